"""The MUSE evaluation as a plain per-example loop: the yardstick for the batched :class:`MuseEvaluator`.

This is how MUSE's own code (``swj0419/muse_bench``, ``metrics/verbmem.py``, ``knowmem.py``,
``privleak.py``) spends its time: one ``generate`` call per prompt and one forward pass per text. It
uses the evaluator's tokenisation and per-text formulas, so the two give the same numbers and can be
compared for speed (``python -m unlearn bench``) and checked for equality (tests).
"""

from __future__ import annotations

from unlearn.evaluation.generation import greedy_generate
from unlearn.evaluation.mia import gradnorm_scores
from unlearn.evaluation.muse import MuseEvaluator
from unlearn.evaluation.muse_metrics import cut_at_stop_words
from unlearn.evaluation.muse_results import MuseResult
from unlearn.models.modes import eval_mode
from unlearn.models.token_stats import token_stats


def naive_muse_evaluate(model, tokenizer, sets: dict[str, list[dict]], max_length: int, **settings) -> MuseResult:
    """Every number of :class:`MuseEvaluator` (``settings``: its keyword arguments), one example at a time."""
    evaluator = MuseEvaluator(tokenizer, sets, max_length, batch_size=1, **settings)
    part: dict[str, dict[int, object]] = {}
    with eval_mode(model):
        for name, prompts in evaluator.prompts.items():
            for i, prompt in enumerate(prompts):
                text = greedy_generate(model, tokenizer, [prompt], evaluator.max_new_tokens[name], batch_size=1)[0]
                part.setdefault(name, {})[i] = text if name == "verbmem_forget" else cut_at_stop_words(text)
        for name, examples in evaluator.examples.items():
            for i, example in enumerate(examples):
                stats = token_stats(model, [example], tokenizer.pad_token_id, batch_size=1,
                                    vocab_stats="min_k_plus_plus" in evaluator.attacks)
                values = evaluator.text_values(name, i, stats)
                if "gradnorm" in evaluator.attacks and name != "verbmem_forget":
                    values["gradnorm"] = float(gradnorm_scores(model, [example], evaluator.gradnorm_p)[0])
                part.setdefault(f"{name}_scores", {})[i] = values
    return evaluator.assemble([part])
