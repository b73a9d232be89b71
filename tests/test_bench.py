"""The benchmark command runs and prints a comparable table."""

import re

import pytest
import torch

from unlearn.experiments.bench import METHODS, PRESETS, build, main

pytestmark = pytest.mark.slow


def test_bench_prints_every_method_with_ratios(capsys):
    assert main(["--preset", "tiny", "--rounds", "2", "--steps", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    rows = {m: re.search(rf"^\| {m} \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", out, re.M) for m in METHODS}
    assert all(rows.values()), out
    assert float(rows["ga"].group(2)) == 1.0 and float(rows["ga"].group(4)) == 1.0
    # The resident reference holds a second copy of the weights; the cache does not.
    weights_mib = sum(p.numel() * 4 for p in build(PRESETS["tiny"], "cpu", torch.float32)[0].parameters()) / 2**20
    extra = float(rows["npo_resident"].group(3)) - float(rows["npo_cached"].group(3))
    assert extra > 0.5 * weights_mib, (extra, weights_mib, out)
    # Both evaluation lines: TOFU's and MUSE's with membership inference, each checked against its per-example loop.
    assert out.count("Same metrics: yes; same generations: yes.") == 2, out
    assert "MUSE + membership-inference throughput" in out
