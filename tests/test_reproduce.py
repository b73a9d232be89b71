"""``python -m unlearn reproduce``: a recipe's numbers against their bands, exit code 3 outside (fake and real fit)."""

import json

import pytest

from tests.helpers import TINY_CONFIG
from tests.test_sweep_runner import FakeFit
from unlearn.cli import main
from unlearn.experiments.reproduce import OutsideBandError, check_bands, load_recipe
from unlearn.experiments.sweep_file import SweepFileError

RECIPE = f"""description: a tiny recipe
runs:
  base: {{configs: [{TINY_CONFIG}], overrides: [eval.max_rows=4, eval.max_new_tokens=4]}}
  seeds: [1, 2]
overrides: [trainer.accelerator=cpu]
env: {{OMP_NUM_THREADS: 1}}
bands:
  default:
    model utility: [{{low}}, {{high}}]
    model utility × start: [0.0, 1.5]
"""


def recipe(tmp_path, low=0.0, high=1.0, name="tiny.yaml"):
    path = tmp_path / name
    path.write_text(RECIPE.replace("{low}", str(low)).replace("{high}", str(high)))
    return path


def test_inside_the_bands_passes_and_outside_exits_3(tmp_path, monkeypatch, capsys):
    fake = FakeFit({"default_seed1": (0.5, 0.7), "default_seed2": (0.5, 0.9)})
    monkeypatch.setattr("unlearn.experiments.runner.launch_logged", fake)
    out = tmp_path / "out"
    assert main(["reproduce", str(recipe(tmp_path)), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| default | model utility | 0.8 ± 0.141 (n=2) | [0, 1] | ok |" in printed
    assert "All 2 numbers inside their bands." in printed
    fits = [c for c in fake.commands if c[3] == "fit"]
    assert len(fits) == 2 and "trainer.accelerator=cpu" in fits[0]
    assert f"run.cache_dir={out / 'cache'}" in fits[0]  # its own models, trained under the recipe's environment

    # A band the mean (0.8) misses: the table says which, the command exits 3; the finished runs are not rerun.
    assert main(["reproduce", str(recipe(tmp_path, 0.85, 0.95)), "--out", str(out)]) == OutsideBandError.exit_code == 3
    captured = capsys.readouterr()
    assert "| default | model utility | 0.8 ± 0.141 (n=2) | [0.85, 0.95] | OUTSIDE |" in captured.out
    assert "error: reproduce tiny: default model utility outside the band" in captured.err
    assert len([c for c in fake.commands if c[3] == "fit"]) == 2
    assert "OUTSIDE" in (out / "reproduce.md").read_text()


def test_a_missing_number_is_outside_its_band():
    rows = check_bands({"a": {"forget quality": [0, 1]}, "b": {"model utility": [0, 1]}},
                       [{"point": "a", "metrics": {"forget quality": {"mean": None, "sd": None, "n": 0}}}])
    assert [r["ok"] for r in rows] == [False, False]


@pytest.mark.parametrize("text, message", [
    ("runs: {}\n", "'bands' maps"),
    ("runs: {}\nsweep: x\nbands: {a: {b: [0, 1]}}\n", "not both"),
    ("runs: {}\nbands: {a: {b: [1, 0]}}\n", "low <= high"),
    ("runs: {}\nbands: {a: {b: 1}}\n", "low <= high"),
    ("runs: {}\nbandz: {}\n", "a recipe is a mapping"),
])
def test_recipe_mistakes(tmp_path, text, message):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(SweepFileError, match=message):
        load_recipe(str(path))


REAL = f"""runs:
  base: {{configs: [{TINY_CONFIG}], overrides: [eval.max_rows=4, eval.max_new_tokens=4]}}
overrides: [trainer.accelerator=cpu]
env: {{OMP_NUM_THREADS: 1, ATEN_CPU_CAPABILITY: default}}
bands:
  default: {{forget ROUGE-L: [0.0, 1.0], steps: [{{low}}, {{high}}]}}
"""


@pytest.mark.slow
def test_a_tiny_recipe_runs_fit_for_real_and_is_checked(tmp_path, tiny_cache, capsys):
    out, path = tmp_path / "out", tmp_path / "tiny.yaml"
    path.write_text(REAL.replace("{low}", "1").replace("{high}", "1000"))
    assert main(["reproduce", str(path), "--out", str(out), f"run.cache_dir={tiny_cache}"]) == 0
    assert "All 2 numbers inside their bands." in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    steps = results["points"][0]["metrics"]["steps"]["mean"]
    assert steps >= 1 and (out / "runs" / "default" / "model").is_dir()
    path.write_text(REAL.replace("{low}", str(steps + 1)).replace("{high}", str(steps + 2)))
    assert main(["reproduce", str(path), "--out", str(out), f"run.cache_dir={tiny_cache}"]) == 3
    assert "| default | steps |" in capsys.readouterr().out and "OUTSIDE" in (out / "reproduce.md").read_text()
