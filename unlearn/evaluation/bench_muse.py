"""MUSE and membership-inference throughput: the batched evaluator against the per-example loop.

The built-in MUSE-format benchmark's evaluation sets and a freshly initialised model of the
built-in shape (speed depends on the data's shape, not on what the model knows); both paths must
give the same numbers before their speed is reported.
"""

from __future__ import annotations

import math
import time


def muse_throughput(device: str = "cpu", batch_size: int = 32, verbmem_tokens: int = 64) -> str:
    """A markdown table of seconds for both paths over every MUSE set (every attack on), and their ratio."""
    from unlearn.data.muse_synthetic import MuseSpec, generate_muse_benchmark
    from unlearn.evaluation.muse import MuseEvaluator
    from unlearn.evaluation.naive_muse import naive_muse_evaluate
    from unlearn.models.loading import build_tiny_llama, train_tokenizer

    layout = generate_muse_benchmark(MuseSpec())
    sets = {"verbmem_forget": layout["verbmem"]["forget"],
            **{f"knowmem_{name}": rows for name, rows in layout["knowmem"].items()},
            **{f"privleak_{name}": rows for name, rows in layout["privleak"].items()}}
    texts = [row["text"] for rows in layout["raw"].values() for row in rows]
    tokenizer = train_tokenizer(texts, 1024)
    tokenizer.pad_token = tokenizer.eos_token
    model = build_tiny_llama(tokenizer, 128, 4, 4, 256, seed=0).to(device).eval()
    settings = {"verbmem_max_new_tokens": verbmem_tokens}
    items = sum(len(rows) for name, rows in sets.items() if not name.endswith("_icl"))

    evaluator = MuseEvaluator(tokenizer, sets, 256, batch_size, **settings)
    evaluator(model)  # warm-up
    start = time.perf_counter()
    batched = evaluator(model)
    batched_s = time.perf_counter() - start
    start = time.perf_counter()
    naive = naive_muse_evaluate(model, tokenizer, sets, 256, **settings)
    naive_s = time.perf_counter() - start

    a, b = batched.summary(), naive.summary()
    same = all(_close(a[k], b[k]) for k in a)
    same_text = all(batched.generations[n].generation == naive.generations[n].generation for n in batched.generations)
    return "\n".join([
        f"\nMUSE + membership-inference throughput ({items} prompts and texts: VerbMem up to {verbmem_tokens} new "
        f"tokens, KnowMem, PrivLeak and all six attacks; built-in model shape, {device}):",
        "| evaluator | seconds | items/s | × per-example loop |", "|---|---|---|---|",
        f"| per-example loop | {naive_s:.2f} | {items / naive_s:.1f} | 1.00 |",
        f"| batched (batch {batch_size}) | {batched_s:.2f} | {items / batched_s:.1f} | {naive_s / batched_s:.2f} |",
        f"Same metrics: {'yes' if same else 'NO'}; same generations: {'yes' if same_text else 'NO'}.",
    ])


def _close(x, y) -> bool:
    if x is None or y is None:
        return x is None and y is None
    return math.isclose(x, y, rel_tol=1e-4, abs_tol=1e-6) or (math.isnan(x) and math.isnan(y))
