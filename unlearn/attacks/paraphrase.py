"""The paraphrase attack: the forget split asked in other words.

A model that only learned to refuse the forget set's exact questions may still answer them
reworded. TOFU's forget rows (``forgetNN_perturbed.json``) carry ``paraphrased_question``, a
rewording of ``question`` with the same answer, and the built-in benchmark writes one per row
too (another question template for the same author and attribute, ``unlearn.data.synthetic``).
The attack re-runs the forget metrics with ``question := paraphrased_question``; the answers, the
paraphrased answer (the truth ratio's base) and the perturbed answers stay as they are, so every
number keeps its definition (docs/evaluation.md) and only the prompt changes.
"""

from __future__ import annotations

from unlearn.errors import DataError

FIELD = "paraphrased_question"


def paraphrased_rows(rows: list[dict], origin: str = "the forget split") -> list[dict]:
    """Copies of ``rows`` asking ``paraphrased_question`` as ``question`` (the original kept as ``original_question``).

    Raises:
        DataError: a row without the field (or with an empty one), naming the row and the fix.
    """
    out = []
    for number, row in enumerate(rows):
        text = row.get(FIELD)
        if not isinstance(text, str) or not text.strip():
            what = "has no" if FIELD not in row else "has an empty"
            raise DataError(f"{origin}, row {number} {what} '{FIELD}' field (its fields: {sorted(row)}). The "
                            "paraphrase attack asks each forget question in other words and needs that field: TOFU's "
                            "forgetNN_perturbed.json files and the built-in benchmark have it. Add it to every row, or "
                            "leave paraphrase out (attack.names=[relearn,quantize]).")
        out.append({**row, "question": text, "original_question": row["question"]})
    return out


def paraphrased_splits(splits: dict[str, list[dict]], origin: str = "the forget split") -> dict[str, list[dict]]:
    """The evaluation ``splits`` with only the forget split's questions paraphrased (:func:`paraphrased_rows`)."""
    return {**splits, "forget": paraphrased_rows(splits["forget"], origin)}
