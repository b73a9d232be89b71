"""MUSE's metrics as pure functions, as its code computes them (``swj0419/muse_bench``).

- **VerbMem** (``metrics/verbmem.py``, ``eval``): the prompt is a forget-passage prefix tokenised with
  BOS; greedy, 128 new tokens; the reference is ``gt`` cut to its first 128 tokens *counting the BOS*
  (``tokenizer(gt, add_special_tokens=True).input_ids[:, :128]``, decoded without special tokens);
  score = ROUGE-L **F1**, **no stemmer** (``metrics/logger.py``, ``RougeEvalLogger``).
- **KnowMem** (``metrics/knowmem.py``): the in-context pairs as ``"Question: q\\nAnswer: a\\n\\n"``, then
  ``"Question: q\\nAnswer: "`` (trailing space); greedy, 32 new tokens; the output cut before the first
  ``"\\n\\n"``, then ``"\\nQuestion"``, then ``"Question:"``; ROUGE-L F1 against the answer, no stemmer.
- **PrivLeak** (``metrics/privleak.py`` and ``eval.py``): Min-40% of each privleak text, the AUC of
  forget against holdout texts, ``(AUC − AUC_retrain) / AUC_retrain × 100``.

**Scale**: MUSE's ``eval.py`` multiplies VerbMem and KnowMem by 100 (``agg['mean_rougeL'] * 100``) and
PrivLeak is a percentage; this project reports them the same way (open-unlearning reports 0-1 ROUGE).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from unlearn.data.muse import knowmem_prompt  # MUSE's few-shot prompt, built where the data is read
from unlearn.evaluation.metrics import rouge_l_scorer
from unlearn.evaluation.mia import roc_auc

__all__ = ["KNOWMEM_MAX_NEW_TOKENS", "KNOWMEM_STOP_WORDS", "NO_RETAIN", "PRIVLEAK_K", "SCALE", "VERBMEM_MAX_NEW_TOKENS",
           "cut_at_stop_words", "knowmem_prompt", "mean_score", "muse_min_k_score", "privleak", "privleak_auc",
           "rouge_l_f1", "verbmem_reference"]

PRIVLEAK_K = 0.4  # MUSE eval.py: privleak_auc_key = 'forget_holdout_Min-40%'
VERBMEM_MAX_NEW_TOKENS = 128
KNOWMEM_MAX_NEW_TOKENS = 32
KNOWMEM_STOP_WORDS = ("\n\n", "\nQuestion", "Question:")
SCALE = 100.0


def rouge_l_f1(generations: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """ROUGE-L F1 of each generation against its reference, no stemmer (MUSE ``RougeEvalLogger.log``)."""
    if len(generations) != len(references):
        raise ValueError(f"{len(generations)} generations for {len(references)} references")
    scorer = rouge_l_scorer(stemmer=False)
    return np.array([scorer.score(reference, generation)["rougeL"].fmeasure
                     for generation, reference in zip(generations, references)], dtype=np.float64)


def mean_score(values: np.ndarray) -> float | None:
    """MUSE's reported number: ``mean × 100``; None for an empty set."""
    return float(np.mean(values) * SCALE) if len(values) else None


def cut_at_stop_words(text: str, words: Sequence[str] = KNOWMEM_STOP_WORDS) -> str:
    """The text before the stop words, cut in turn (MUSE ``get_prefix_before_words_occur``)."""
    for word in words:
        text = text.split(word)[0]
    return text


def verbmem_reference(tokenizer, gt: str, max_new_tokens: int = VERBMEM_MAX_NEW_TOKENS) -> str:
    """The ground truth's first ``max_new_tokens`` tokens (BOS counted), decoded as MUSE decodes them."""
    ids = tokenizer(gt, add_special_tokens=True)["input_ids"][:max_new_tokens]
    # MUSE also passes clean_up_tokenization_spaces=True, which transformers 5 ignores (with a warning) for
    # BPE tokenizers such as Llama's; the tokenizer's own setting is used, as for the generations.
    return tokenizer.decode(ids, skip_special_tokens=True)


def muse_min_k_score(logprob: np.ndarray, k: float = PRIVLEAK_K) -> float:
    """MUSE's Min-K%: ``−mean`` of the ``int(n·k)`` lowest log-probs of **every** token after BOS.

    MUSE ``metrics/privleak.py``, ``inference``. Unlike open-unlearning's Min-K%
    (:func:`unlearn.evaluation.mia.min_k_score`) the last token is kept, and no ``max(1, ·)``; where
    ``int(n·k)`` is 0 (texts of 1-2 tokens) MUSE's mean of nothing is NaN, and here the lowest one
    token is used instead.
    """
    values = np.sort(np.asarray(logprob, dtype=np.float32))
    if len(values) == 0:
        return float("nan")
    return float(-np.mean(values[:max(1, int(len(values) * k))], dtype=np.float64))


def privleak_auc(forget_scores: np.ndarray, holdout_scores: np.ndarray) -> float:
    """MUSE's forget-vs-holdout AUC of Min-K% scores, in MUSE's orientation.

    MUSE ``metrics/privleak.py``, ``sweep``: ``roc_curve(y, −score)`` with forget labelled 0 and holdout
    1, so the AUC is the probability that a holdout text is *likelier* than a forget text: about 0.5 for
    the retrained model and **near 0 for a model that memorised the forget set** (the News target:
    about 0.001). This is ``1 −`` open-unlearning's AUC of the same scores (its ``privleak`` flips it back).
    """
    return roc_auc(negatives=-np.asarray(forget_scores, dtype=np.float64),
                   positives=-np.asarray(holdout_scores, dtype=np.float64))


NO_RETAIN = ("no retain model results: PrivLeak compares with a model retrained without the forget set; "
             "give one with model.retain_path=...")


def privleak(auc: float, retain_auc: float | None) -> tuple[float | None, str | None]:
    """``PrivLeak = (AUC − AUC_retrain) / AUC_retrain × 100`` (MUSE ``eval.py``), or ``(None, reason)``.

    **Sign**: 0 is the retrained model; negative = under-unlearned (the forget texts still look like
    members: the News target scores about −99.8); positive = over-unlearned (they look *less* familiar
    than unseen text). MUSE hard-codes ``AUC_retrain`` (``constants.py``: News 0.4772, Books 0.5393);
    here it is the retain model's own AUC on the same texts.
    """
    if retain_auc is None:
        return None, NO_RETAIN
    if retain_auc == 0:
        return None, "the retain model's forget-vs-holdout AUC is 0, so PrivLeak (relative to it) is undefined"
    return float((auc - retain_auc) / retain_auc * SCALE), None
