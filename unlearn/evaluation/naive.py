"""The TOFU evaluation as a plain per-example loop: the yardstick for the batched evaluator.

This is how the reference implementations spend their time: one forward pass per (question,
answer) pair and one ``generate`` call per question. It computes exactly the numbers
:class:`~unlearn.evaluation.evaluator.TofuEvaluator` computes, so the two can be compared for
speed (``python -m unlearn bench``) and checked for equality (tests).
"""

from __future__ import annotations

import numpy as np

from unlearn.data.formatting import PromptFormat, prompt_ids
from unlearn.evaluation.generation import greedy_generate
from unlearn.evaluation.metrics import rouge_l_recall
from unlearn.evaluation.results import AUTHOR_SPLITS, SPLITS, EvalResult, SplitResult
from unlearn.models.modes import eval_mode
from unlearn.models.scoring import answer_nll


def _nll_bar(model, tokenizer, fmt: PromptFormat, question: str, answer: str, max_length: int) -> float:
    total, count = answer_nll(model, tokenizer, [question], [answer], fmt, max_length, batch_size=1)
    return (total / count).item()


def naive_evaluate(model, tokenizer, splits: dict[str, list[dict]],
                   prompt_format: str | PromptFormat = "plain",
                   max_length: int = 512, max_new_tokens: int = 48) -> EvalResult:
    """Every number of the TOFU evaluation, one example at a time."""
    fmt = PromptFormat.of(prompt_format)
    results = {}
    with eval_mode(model):
        for name in SPLITS:
            rows = splits[name]
            answer_nll, base_nll, perturbed, generations = [], [], [], []
            for row in rows:
                answer_nll.append(_nll_bar(model, tokenizer, fmt, row["question"], row["answer"], max_length))
                base = row["paraphrased_answer"] if name in AUTHOR_SPLITS else row["answer"]
                base_nll.append(_nll_bar(model, tokenizer, fmt, row["question"], base, max_length))
                others = row["perturbed_answer"]
                others = [others] if isinstance(others, str) else others
                perturbed.append([_nll_bar(model, tokenizer, fmt, row["question"], p, max_length) for p in others])
                prompt = prompt_ids(tokenizer, fmt, row["question"])
                generations.append(greedy_generate(model, tokenizer, [prompt], max_new_tokens, batch_size=1)[0])
            width = max(len(p) for p in perturbed)
            perturbed_nll = np.full((len(rows), width), np.nan)
            for i, values in enumerate(perturbed):
                perturbed_nll[i, :len(values)] = values
            answers = [r["answer"] for r in rows]
            results[name] = SplitResult(name, np.arange(len(rows)), [r["question"] for r in rows], answers, generations,
                                        np.array(answer_nll), np.array(base_nll), perturbed_nll,
                                        rouge_l_recall(generations, answers))
    return EvalResult(results)
