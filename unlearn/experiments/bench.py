"""``python -m unlearn bench``: what NPO costs next to gradient ascent, measured in one run.

Three ways to take an unlearning step on the same model and batches:

- ``ga``: gradient ascent, the floor (one forward and backward pass, no reference);
- ``npo_cached``: NPO with the reference's sequence log-probs cached (``reference.mode=cache``);
- ``npo_resident``: NPO with a second, frozen copy of the model computing them every step.

Step time: the methods take turns in rounds (so drift in machine load hits all of them alike),
and each reports its median time per optimiser step. Peak memory: on CUDA,
``torch.cuda.max_memory_allocated`` after a reset; on CPU, each method runs in a fresh child
process, and the figure is its peak resident set size (reset just before the method starts) minus
the resident size at that moment (Linux ``/proc``).

Evaluation throughput (questions per second of the batched evaluator against a per-example loop
computing the same numbers) is printed when the evaluator is available.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import torch

METHODS = ("ga", "npo_cached", "npo_resident")


@dataclass(frozen=True)
class Preset:
    """Model and batch shape of a benchmark run."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    batch_size: int
    seq_len: int
    answer_len: int


PRESETS = {
    # For tests: seconds, not minutes.
    "tiny": Preset(8192, 64, 2, 2, 128, 4, 32, 8),
    # Small enough to run in about a minute on 2 CPU cores.
    "cpu": Preset(4096, 256, 4, 4, 1024, 8, 128, 48),
    # About 400M parameters: the sizes at which a GPU is busy rather than waiting on launches.
    "gpu": Preset(32000, 1024, 20, 16, 4096, 8, 512, 128),
}


def build(preset: Preset, device: str, dtype: torch.dtype, seed: int = 0):
    """A Llama of the preset's shape, and a fixed pool of forget batches (prompt tokens masked)."""
    from unlearn.data.formatting import IGNORE_INDEX
    from unlearn.models.loading import build_tiny_llama

    model = build_tiny_llama(None, preset.hidden_size, preset.num_hidden_layers, preset.num_attention_heads,
                             preset.intermediate_size, max(512, preset.seq_len), seed=seed,
                             vocab_size=preset.vocab_size, tie_word_embeddings=False)
    model = model.to(device=device, dtype=dtype).train()
    torch.manual_seed(seed)
    batches = []
    for i in range(4):
        ids = torch.randint(3, preset.vocab_size, (preset.batch_size, preset.seq_len), device=device)
        labels = ids.clone()
        labels[:, : preset.seq_len - preset.answer_len] = IGNORE_INDEX
        index = torch.arange(i * preset.batch_size, (i + 1) * preset.batch_size, device=device)
        batches.append({"forget": {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels,
                                   "index": index}})
    return model, batches


def make_step(method: str, model, batches, device: str):
    """A closure taking one optimiser step of ``method`` on batch ``i``."""
    from unlearn.losses import build_loss
    from unlearn.losses.base import forward_logits, sequence_nll
    from unlearn.models.modes import eval_mode
    from unlearn.reference.references import CachedReference, ModelReference

    if method == "ga":
        loss, reference = build_loss("ga"), None
    elif method == "npo_resident":
        loss, reference = build_loss("npo", beta=0.1), ModelReference(copy.deepcopy(model))
    else:
        # What reference.mode=cache holds after its one pass with the not-yet-updated policy.
        loss, reference = build_loss("npo", beta=0.1), CachedReference({"forget": []}, pad_token_id=0)
        with torch.no_grad(), eval_mode(model):
            reference.table = {"forget": torch.cat([-sequence_nll(forward_logits(model, b["forget"]),
                                                                  b["forget"]["labels"]) for b in batches])}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step(i: int) -> None:
        out = loss(model, batches[i % len(batches)], reference)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def step_times(preset: Preset, device: str, dtype: torch.dtype, rounds: int, steps: int) -> dict[str, float]:
    """Median seconds per step of each method, the methods interleaved round by round."""
    model, batches = build(preset, device, dtype)
    runners = {m: make_step(m, copy.deepcopy(model), batches, device) for m in METHODS}
    for run in runners.values():  # warm-up: allocator, kernels, optimiser state
        run(0)
        run(1)
    _sync(device)
    samples = {m: [] for m in METHODS}
    for _ in range(rounds):
        for method, run in runners.items():
            _sync(device)
            start = time.perf_counter()
            for i in range(steps):
                run(i)
            _sync(device)
            samples[method].append((time.perf_counter() - start) / steps)
    return {m: statistics.median(v) for m, v in samples.items()}


def peak_memory_cuda(preset: Preset, device: str, dtype: torch.dtype, steps: int) -> dict[str, float]:
    """Peak bytes allocated by each method, from a clean allocator state."""
    result = {}
    for method in METHODS:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        model, batches = build(preset, device, dtype)
        run = make_step(method, model, batches, device)
        for i in range(steps):
            run(i)
        _sync(device)
        result[method] = float(torch.cuda.max_memory_allocated(device))
        del model, batches, run
    return result


def _child_peak_rss(preset_name: str, method: str, steps: int) -> float:
    """Run ``method`` in a fresh process and return its peak RSS growth in bytes."""
    # glibc keeps freed heap pages, so RSS would remember earlier, unrelated peaks; sending every
    # allocation over 64 KiB through mmap returns freed tensors to the OS and makes RSS follow live memory.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    out = subprocess.run([sys.executable, "-m", "unlearn.experiments.bench", "--child", method, "--preset", preset_name,
                          "--steps", str(steps)], capture_output=True, text=True, check=True, env=env).stdout
    return float(json.loads(out.strip().splitlines()[-1])["peak_rss_growth"])


def _status_kib(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _child(method: str, preset_name: str, steps: int) -> None:
    model, batches = build(PRESETS[preset_name], "cpu", torch.float32)
    # Reset the process's peak-RSS mark (Linux: clear_refs 5) so that peaks from imports and
    # building the model do not hide the method's own; growth is measured from the RSS at that point.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _status_kib("VmRSS")
    run = make_step(method, model, batches, "cpu")
    for i in range(steps):
        run(i)
    print(json.dumps({"peak_rss_growth": (_status_kib("VmHWM") - base) * 1024}))


def format_table(times: dict[str, float], memory: dict[str, float], memory_kind: str) -> str:
    lines = ["| method | step time (ms) | × GA | peak memory (MiB) | × GA |", "|---|---|---|---|---|"]
    for m in METHODS:
        lines.append(f"| {m} | {times[m] * 1e3:.1f} | {times[m] / times['ga']:.3f} | "
                     f"{memory[m] / 2**20:.1f} | {memory[m] / memory['ga']:.3f} |")
    lines.append(f"\nPeak memory: {memory_kind}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unlearn bench",
                                     description="Step time and peak memory of GA, NPO with a cached reference and "
                                                 "NPO with a resident reference, measured in one run.")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default=None,
                        help="default: bfloat16 on CUDA, float32 on CPU")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=3, help="steps per method per round")
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.preset, args.steps)
        return 0
    dtype = getattr(torch, args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32"))
    preset = PRESETS[args.preset]
    params = sum(p.numel() for p in build(preset, "cpu", torch.float32)[0].parameters())
    print(f"Preset '{args.preset}': {params / 1e6:.1f}M parameters, batch {preset.batch_size} x {preset.seq_len} "
          f"tokens ({preset.answer_len} answer tokens), {args.device}, {dtype}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    times = step_times(preset, args.device, dtype, args.rounds, args.steps)
    if args.device.startswith("cuda"):
        memory, kind = peak_memory_cuda(preset, args.device, dtype, args.steps), "torch.cuda.max_memory_allocated"
    else:
        memory = {m: _child_peak_rss(args.preset, m, args.steps) for m in METHODS}
        kind = "peak RSS growth of a fresh process per method, over the model and batches it starts with"
    print(format_table(times, memory, kind))
    from unlearn.evaluation.bench import evaluation_throughput
    from unlearn.evaluation.bench_muse import muse_throughput

    print(evaluation_throughput(args.device))
    print(muse_throughput(args.device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
