"""``model.from_scratch``: the built-in architecture trained on TOFU-format files of a local folder, then unlearned."""

import json

import pytest

from tests.helpers import TINY_CONFIG
from unlearn.cli import main
from unlearn.config.loading import load_config
from unlearn.data.benchmark_files import write_benchmark
from unlearn.data.synthetic import BenchmarkSpec, generate_benchmark
from unlearn.errors import ConfigError

SPEC = BenchmarkSpec(num_authors=10, questions_per_author=5, num_general_facts=10)


@pytest.fixture(scope="module")
def tofu_folder(tmp_path_factory):
    """A folder in TOFU's layout (full, forgetNN, retainNN, the perturbed and general-knowledge files)."""
    folder = tmp_path_factory.mktemp("data") / "my_tofu"
    write_benchmark(folder, generate_benchmark(SPEC))
    return folder


def _args(tmp_path, folder, *extra):
    # The shipped experiment, shrunk only in size by the tests' tiny preset after it (progress bar, evaluation,
    # selection as a user gets them).
    return ["--config", "experiment/tofu_scratch", "--config", TINY_CONFIG, f"data.path={folder}",
            "data.max_length=128", "eval.max_new_tokens=8", "eval.every_n_epochs=1",
            f"run.cache_dir={tmp_path / 'cache'}", f"run.output_dir={tmp_path / 'runs'}", *extra]


@pytest.mark.slow
def test_finetune_then_fit_from_scratch_on_tofu_format_files(tmp_path, tofu_folder, capsys):
    assert main(["finetune", *_args(tmp_path, tofu_folder)]) == 0
    printed = capsys.readouterr().out
    models = list((tmp_path / "cache" / "models").glob("scratch-my_tofu-*"))
    assert len(models) == 1 and {"tokenizer", "target", "retain90"} <= {p.name for p in models[0].iterdir()}
    assert f"Target model: {models[0] / 'target'}" in printed
    stamp = (models[0] / "target" / "model.safetensors").stat().st_mtime_ns

    assert main(["fit", *_args(tmp_path, tofu_folder, "run.name=scratch")]) == 0
    assert (models[0] / "target" / "model.safetensors").stat().st_mtime_ns == stamp  # cached, not retrained
    summary = json.loads((tmp_path / "runs" / "scratch" / "summary.json").read_text())
    assert summary["target_model"] == str(models[0] / "target")
    assert summary["retain_model"] == str(models[0] / "retain90")
    evaluation = summary["evaluation"]
    assert evaluation["benchmark"] == "tofu" and evaluation["selected_epoch"] == 1
    assert 0 < evaluation["unlearned"]["forget/forget_quality"] <= 1
    assert evaluation["retain"]["forget/forget_quality"] == 1.0

    # Other sizes are other models, in a folder of their own.
    assert main(["finetune", *_args(tmp_path, tofu_folder, "model.builtin.hidden_size=16",
                                    "model.builtin.intermediate_size=32")]) == 0
    assert len(list((tmp_path / "cache" / "models").glob("scratch-my_tofu-*"))) == 2


def test_the_tokenizer_is_trained_on_the_folders_text(tmp_path, tofu_folder):
    from unlearn.training.finetune import benchmark_texts

    texts = set(benchmark_texts(tofu_folder))
    full = [json.loads(line) for line in (tofu_folder / "full.json").read_text().splitlines()]
    assert all(r["question"] in texts and r["answer"] in texts for r in full)


@pytest.mark.parametrize("overrides, message", [
    (["model.path=/some/model"], "needs no model.path"),
    (["data=builtin"], "data.source=builtin"),
])
def test_from_scratch_refuses_what_it_cannot_train_on(tmp_path, tofu_folder, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(["experiment/tofu_scratch"], [f"data.path={tofu_folder}", *overrides])


def test_a_hub_id_or_missing_folder_is_refused_before_anything_trains(tmp_path, capsys):
    for path in ("locuslab/TOFU", str(tmp_path / "missing")):
        assert main(["finetune", *_args(tmp_path, path)]) != 0
        err = capsys.readouterr().err
        assert "model.from_scratch=true trains its tokenizer and models on the files of a local folder" in err
    assert not (tmp_path / "cache" / "models").exists() or not list((tmp_path / "cache" / "models").iterdir())
