"""Fluency of greedy generations: gibberish as a number.

The NPO paper's third finding is that gradient ascent's answers turn to gibberish while NPO's
stay sensible. Two cheap measures of the generations the evaluator already makes put a number
on it; neither enters model utility, the harmonic mean of exactly 9 numbers (docs/definitions.md,
"TOFU metrics").

- **distinct-2** (Li et al., 2016, "A Diversity-Promoting Objective Function for Neural
  Conversation Models"): per generation, unique word bigrams / all word bigrams, averaged over
  the generations that have at least one bigram. A sensible answer scores near 1; a loop such as
  ``"the the the the"`` scores 1/3. It is per generation, not over the whole split, because
  answers sharing a template ("X was born in ...") is not a fluency problem.
- **repetition**: the fraction of generations that contain a repeated loop, a block of 1 to
  ``max_period`` words repeated ``min_repeats`` times or more back to back.
- **short answers**: the fraction of generations with fewer than two words (empty, or one word or
  mark). Neither measure above can see them: an empty answer has no bigram for distinct-2 and no
  loop, so a model that has stopped answering would read as fluent without this third number.

Words are runs of letters and digits, and each punctuation mark is a word of its own, so a
collapsed model's ``"!!!!"`` is a loop of ``"!"``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence


WORD = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> list[str]:
    """Lower-cased words and punctuation marks of ``text``."""
    return WORD.findall(text.lower())


def distinct_n(text: str, n: int = 2) -> float | None:
    """Unique n-grams / all n-grams of one text's words; None when it has fewer than ``n`` words."""
    tokens = words(text)
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


def mean_distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Mean of :func:`distinct_n` over the texts that have an n-gram; 0.0 when none has (empty answers)."""
    values = [v for v in (distinct_n(t, n) for t in texts) if v is not None]
    return sum(values) / len(values) if values else 0.0


def has_loop(text: str, min_repeats: int = 3, max_period: int = 4) -> bool:
    """Whether a block of 1 to ``max_period`` words occurs ``min_repeats`` or more times in a row."""
    tokens = words(text)
    for period in range(1, max_period + 1):
        span = period * min_repeats
        for start in range(len(tokens) - span + 1):
            block = tokens[start:start + period]
            if all(tokens[start + k * period:start + (k + 1) * period] == block for k in range(1, min_repeats)):
                return True
    return False


def repetition_rate(texts: Sequence[str], min_repeats: int = 3, max_period: int = 4) -> float:
    """Fraction of texts with a loop (:func:`has_loop`); 0.0 for no texts."""
    return sum(has_loop(t, min_repeats, max_period) for t in texts) / len(texts) if texts else 0.0


def short_answer_rate(texts: Sequence[str]) -> float:
    """Fraction of texts with fewer than two words (:func:`words`); 0.0 for no texts."""
    return sum(len(words(t)) < 2 for t in texts) / len(texts) if texts else 0.0


def fluency(texts: Sequence[str]) -> dict[str, float]:
    """``{"distinct_2": ..., "repetition": ..., "short_answers": ...}`` of one split's generations."""
    return {"distinct_2": mean_distinct_n(texts, 2), "repetition": repetition_rate(texts),
            "short_answers": short_answer_rate(texts)}
