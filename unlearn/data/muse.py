"""MUSE's data (Shi et al., 2024; ``swj0419/muse_bench``): from the Hugging Face hub or a local folder.

``data.source=muse`` reads ``data.path``: a hub id (``muse-bench/MUSE-News``, ``muse-bench/MUSE-Books``)
or a local folder. ``data.source=muse_builtin`` reads the generated stand-in
(:mod:`unlearn.data.muse_synthetic`), written in the same local layout. The hub configs and splits
this project reads (the dataset cards; open-unlearning's ``configs/data/datasets/MUSE_*.yaml``):

============  ===============================================  =================
config        splits                                           fields
============  ===============================================  =================
``raw``       forget, retain1, retain2, holdout                text
``knowmem``   forget_qa, retain_qa, forget_qa_icl, retain_qa_icl  question, answer
``verbmem``   forget                                           prompt, gt
``privleak``  forget, retain, holdout                          text
============  ===============================================  =================

**Local layout**: ``<folder>/<config>/<split>.json``, e.g. ``<folder>/raw/forget.json`` and
``<folder>/knowmem/forget_qa_icl.json``: JSON Lines of objects with the fields above (what the
built-in stand-in writes), or one JSON array of such objects, or, for ``raw`` and ``privleak``, a JSON
array of strings. That is the layout of the hub repository's own ``.json`` files and of the
``data/news/`` folder that muse_bench's ``load_data.py`` writes, so either can be pointed at.

Unlearning trains on ``raw``: the forget split and a retain split (MUSE's baselines use ``retain1``,
``baselines/scripts/unlearn_news.sh``); the evaluation sets are read by :func:`load_muse_eval`.
"""

from __future__ import annotations

from pathlib import Path

from unlearn.data.textfiles import looks_like_path, missing_path_message, parse_json_rows
from unlearn.errors import DataError

MUSE_SOURCES = ("muse", "muse_builtin")  # data.source values that read MUSE's layout
MUSE_HUB_IDS = ("muse-bench/MUSE-News", "muse-bench/MUSE-Books")
RAW_SPLITS = ("forget", "retain1", "retain2", "holdout")
DEFAULT_RETAIN_SPLIT = "retain1"  # MUSE's baselines unlearn with retain1 as the retain set
LAYOUT = {  # config -> (splits, fields of a row)
    "raw": (RAW_SPLITS, ("text",)),
    "knowmem": (("forget_qa", "retain_qa", "forget_qa_icl", "retain_qa_icl"), ("question", "answer")),
    "verbmem": (("forget",), ("prompt", "gt")),
    "privleak": (("forget", "retain", "holdout"), ("text",)),
}
# The evaluation sets, by the key the MUSE evaluator reads them under: (config, split).
EVAL_SETS = {
    "verbmem_forget": ("verbmem", "forget"),
    "knowmem_forget_qa": ("knowmem", "forget_qa"),
    "knowmem_retain_qa": ("knowmem", "retain_qa"),
    "knowmem_forget_qa_icl": ("knowmem", "forget_qa_icl"),
    "knowmem_retain_qa_icl": ("knowmem", "retain_qa_icl"),
    "privleak_forget": ("privleak", "forget"),
    "privleak_retain": ("privleak", "retain"),
    "privleak_holdout": ("privleak", "holdout"),
}
EXPECTED_LAYOUT = "; ".join(f"<folder>/{config}/{{{','.join(splits)}}}.json with {', '.join(fields)}"
                            for config, (splits, fields) in LAYOUT.items())


def is_muse(source: str) -> bool:
    """Whether ``data.source`` names a MUSE-format benchmark (real MUSE or the built-in stand-in)."""
    return source in MUSE_SOURCES


def retain_split_or_default(retain_split: str | None) -> str:
    """``data.retain_split`` of a MUSE run, ``retain1`` when unset."""
    return retain_split or DEFAULT_RETAIN_SPLIT


def load_muse_split(source: str | Path, config: str, split: str) -> list[dict]:
    """The rows of one config and split, from a local folder in MUSE's layout or a hub dataset id.

    Raises:
        DataError: a missing folder, config folder or split file (naming what is missing and the
            layout expected), a row without one of the config's fields, an empty field or split, or
            a hub dataset that cannot be loaded.
    """
    fields = LAYOUT[config][1] if config in LAYOUT else ("text",)
    local = Path(source).expanduser()
    if local.exists():
        path = _local_file(local, config, split)
        rows, origin = parse_json_rows(path), f"MUSE config '{config}' split '{split}' ({path})"
    elif looks_like_path(source):
        raise DataError(missing_path_message("data.path", source, "folder"))
    else:
        rows, origin = _load_from_hub(str(source), config, split), f"{source} (config '{config}', split '{split}')"
    if fields == ("text",) and rows and all(isinstance(row, str) for row in rows):
        rows = [{"text": row} for row in rows]  # muse_bench's own files: a JSON array of strings
    _validate(rows, fields, origin)
    return rows


def _local_file(folder: Path, config: str, split: str) -> Path:
    if not folder.is_dir():
        raise DataError(f"data.path={folder} is a file; MUSE's data is a folder of configs. "
                        f"Expected layout: {EXPECTED_LAYOUT}.")
    if not (folder / config).is_dir():
        present = sorted(p.name for p in folder.iterdir() if p.is_dir())
        raise DataError(f"The MUSE folder {folder} has no '{config}' config folder ({folder / config}); its folders "
                        f"are {present or 'none'}. Expected layout: {EXPECTED_LAYOUT}.")
    path = folder / config / f"{split}.json"
    if not path.is_file():
        present = sorted(p.stem for p in (folder / config).glob("*.json"))
        raise DataError(f"The MUSE folder {folder} has no split '{split}' of config '{config}': no file {path}. "
                        f"Splits in {config}/: {', '.join(present) or 'none'}. Expected layout: {EXPECTED_LAYOUT}.")
    return path


def _load_from_hub(repo_id: str, config: str, split: str) -> list[dict]:
    import datasets

    try:
        dataset = datasets.load_dataset(repo_id, config, split=split)
    except Exception as err:  # the hub client raises many types: offline, unknown repo, config or split
        raise DataError(
            f"Cannot load '{repo_id}' config '{config}' split '{split}' from the Hugging Face hub "
            f"({type(err).__name__}: {err}). Check the dataset id ({' or '.join(MUSE_HUB_IDS)}) and your "
            f"connection, or point data.path at a local folder: {EXPECTED_LAYOUT}.") from err
    return [dict(row) for row in dataset]


def _validate(rows: list, fields: tuple[str, ...], origin: str) -> None:
    """Every row is an object holding each of ``fields`` as non-empty text."""
    if not rows:
        raise DataError(f"{origin} has no rows; MUSE's rows there hold {', '.join(fields)}. Fill it in.")
    for number, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(f"{origin}, row {number}: expected an object with {list(fields)}, "
                            f"got {type(row).__name__} {row!r:.60}.")
        missing = [name for name in fields if name not in row]
        if missing:
            raise DataError(f"{origin}, row {number}: missing field(s) {missing}; the row has {sorted(row)}. "
                            f"MUSE's rows there hold {', '.join(fields)}.")
        for name in fields:
            if not isinstance(row[name], str) or not row[name].strip():
                raise DataError(f"{origin}, row {number}: field '{name}' must be non-empty text, got "
                                f"{row[name]!r:.60}. Fill it in or remove the row.")


def load_muse_corpus(source: str | Path, split: str) -> list[dict]:
    """One raw corpus (``forget``, ``retain1``, ...) as text rows ``[{"text": article}]``."""
    return [{"text": row["text"]} for row in load_muse_split(source, "raw", split)]


def load_muse_corpora(source: str | Path, forget_split: str = "forget",
                      retain_split: str = DEFAULT_RETAIN_SPLIT) -> tuple[list[dict], list[dict]]:
    """The forget and retain corpora an unlearning run trains on, as text rows."""
    return load_muse_corpus(source, forget_split), load_muse_corpus(source, retain_split)


def load_muse_eval(source: str | Path) -> dict[str, list[dict]]:
    """MUSE's evaluation sets, keyed as :data:`EVAL_SETS`.

    Returns:
        ``verbmem_forget``: ``[{prompt, gt}]``; ``knowmem_{forget,retain}_qa`` and their ``_icl``
        in-context examples: ``[{question, answer}]``; ``privleak_{forget,retain,holdout}``: ``[{text}]``.

    Raises:
        DataError: as :func:`load_muse_split`, for the first set that is missing or broken.
    """
    sets = {}
    for key, (config, split) in EVAL_SETS.items():
        fields = LAYOUT[config][1]
        sets[key] = [{name: row[name] for name in fields} for row in load_muse_split(source, config, split)]
    return sets


def knowmem_prompt(question: str, icl: list[dict]) -> str:
    """MUSE's KnowMem prompt: in-context pairs, then the question.

    As ``swj0419/muse_bench``, ``metrics/knowmem.py``, ``eval`` builds it (open-unlearning renders
    its few-shot pairs through the model's template instead; this follows MUSE's own code).

    Each pair is ``"Question: q\\nAnswer: a\\n\\n"``; the prompt ends ``"Question: q\\nAnswer: "``.
    """
    shots = "".join(f"Question: {row['question']}\nAnswer: {row['answer']}\n\n" for row in icl)
    return f"{shots}Question: {question}\nAnswer: "


def tokenize_knowmem(tokenizer, question: str, answer: str, icl: list[dict], max_length: int):
    """A KnowMem question as a training example: its prompt (BOS, masked), the answer and EOS as labels.

    MUSE tokenises the prompt alone, with the BOS, and generates after it (``metrics/knowmem.py``);
    its last token is the space of ``"Answer: "``. The answer is therefore tokenised on its own and
    appended, so training sees the same prompt tokens generation starts from (tokenising prompt and
    answer as one string, as :func:`~unlearn.data.formatting.tokenize_qa` does for TOFU, would merge
    that space into the answer's first token). Cut on the right to ``max_length``.

    Returns:
        A :class:`~unlearn.data.formatting.TokenizedExample`.

    Raises:
        DataError: the prompt alone leaves no room for an answer token within ``max_length``.
    """
    from unlearn.data.formatting import IGNORE_INDEX, TokenizedExample  # torch: not needed to read a config

    prompt = list(tokenizer(knowmem_prompt(question, icl))["input_ids"])
    if len(prompt) >= max_length:
        raise DataError(f"The KnowMem prompt of {question[:60]!r} ({len(icl)} in-context examples) is "
                        f"{len(prompt)} tokens, leaving no room for the answer within max_length={max_length}; "
                        "raise data.max_length or use fewer in-context examples.")
    ids = prompt + list(tokenizer(answer, add_special_tokens=False)["input_ids"]) + [tokenizer.eos_token_id]
    truncated = len(ids) > max_length
    ids = ids[:max_length]
    labels = [IGNORE_INDEX if i < len(prompt) else token for i, token in enumerate(ids)]
    return TokenizedExample(ids, labels, truncated)
