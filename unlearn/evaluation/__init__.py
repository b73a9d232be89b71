"""TOFU evaluation: metrics on per-question values, the batched evaluator, and their results.

``metrics`` holds the formulas as pure functions of per-question arrays; ``evaluator`` runs a
model over the four splits (sharded under DDP) with ``generation``'s batched greedy decoding;
``results`` holds what comes out; ``cache`` stores a retain model's results so that forget quality
needs it evaluated only once; ``tracking`` wires the callbacks into ``fit`` and writes its summary.
The ``eval`` command itself is :func:`unlearn.evaluation.job.evaluate`.
"""

from unlearn.evaluation.evaluator import TofuEvaluator, load_eval_splits
from unlearn.evaluation.results import SUMMARY_KEYS, EvalResult, SplitResult, format_table

__all__ = ["SUMMARY_KEYS", "EvalResult", "SplitResult", "TofuEvaluator", "format_table", "load_eval_splits"]
