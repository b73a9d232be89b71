"""Evaluation throughput: the batched evaluator against the per-example loop, same model and data.

Runs on the built-in benchmark's evaluation splits with a freshly initialised model of the
built-in shape (the numbers depend on the data's shape, not on what the model knows), and
checks that both paths give the same metrics before reporting their speed.
"""

from __future__ import annotations

import time

import numpy as np


def evaluation_throughput(device: str = "cpu", rows: int = 40, max_new_tokens: int = 32, batch_size: int = 32) -> str:
    """A markdown table of questions per second for both paths, and their speed ratio."""
    import tempfile
    from pathlib import Path

    from unlearn.data.benchmark_files import write_benchmark
    from unlearn.data.synthetic import BenchmarkSpec, generate_benchmark
    from unlearn.evaluation.evaluator import TofuEvaluator
    from unlearn.evaluation.naive import naive_evaluate
    from unlearn.training.finetune import benchmark_texts
    from unlearn.models.loading import build_tiny_llama, train_tokenizer

    bench = generate_benchmark(BenchmarkSpec())
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = train_tokenizer(benchmark_texts(write_benchmark(Path(tmp) / "bench", bench)), 1024)
    splits = {"forget": bench["forget10_perturbed"][:rows], "retain": bench["retain_perturbed"][:rows],
              "real_authors": bench["real_authors_perturbed"][:rows], "world_facts": bench["world_facts_perturbed"][:rows]}
    tokenizer.pad_token = tokenizer.eos_token
    model = build_tiny_llama(tokenizer, 128, 4, 4, 256, seed=0).to(device).eval()
    questions = sum(len(v) for v in splits.values())

    evaluator = TofuEvaluator(tokenizer, splits, max_length=128, max_new_tokens=max_new_tokens, batch_size=batch_size)
    evaluator(model)  # warm-up
    start = time.perf_counter()
    batched = evaluator(model)
    batched_s = time.perf_counter() - start
    start = time.perf_counter()
    naive = naive_evaluate(model, tokenizer, splits, max_length=128, max_new_tokens=max_new_tokens)
    naive_s = time.perf_counter() - start

    a, b = batched.summary(), naive.summary()
    same = all(np.isclose(a[k], b[k], rtol=1e-5, atol=1e-7) for k in a if a[k] is not None and b[k] is not None)
    same_text = all(batched.splits[n].generation == naive.splits[n].generation for n in splits)
    return "\n".join([
        f"\nEvaluation throughput ({questions} questions over 4 splits, greedy generation up to {max_new_tokens} "
        f"tokens, built-in model shape, {device}):",
        "| evaluator | seconds | questions/s | × per-example loop |", "|---|---|---|---|",
        f"| per-example loop | {naive_s:.2f} | {questions / naive_s:.1f} | 1.00 |",
        f"| batched (batch {batch_size}) | {batched_s:.2f} | {questions / batched_s:.1f} | {naive_s / batched_s:.2f} |",
        f"Same metrics: {'yes' if same else 'NO'}; same generations: {'yes' if same_text else 'NO'}.",
    ])
