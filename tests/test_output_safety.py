"""Outputs that no command overwrites by surprise: `finetune model.path=...` never lands in (or is answered
from) the built-in models' cache, and `compare --out` never replaces a comparison unless asked
(docs/reliability.md, "Data loss")."""

import shutil

import pytest

from tests.helpers import TINY_CONFIG
from tests.test_compare import record, write_run
from unlearn.cli import main
from unlearn.config.loading import load_config
from unlearn.errors import RunFolderError
from unlearn.training.finetune import finetune
from unlearn.training.model_cache import MANIFEST, builtin_model_dir, finetuned_model_dir


def _snapshot(folder):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


# --- finetune model.path=... -------------------------------------------------------------------------

@pytest.mark.parametrize("path, message", [
    ("/nonexistent/model", "model.path=/nonexistent/model: no such folder"),
    ("./not/here/model", "model.path=./not/here/model: no such folder"),
    ("no-such-org/no-such-model", "Cannot load tokenizer from 'no-such-org/no-such-model'"),
])
def test_finetune_of_a_missing_model_fails_before_anything_runs(tmp_path, capsys, path, message):
    assert main(["finetune", "--config", TINY_CONFIG, f"run.cache_dir={tmp_path / 'cache'}", f"model.path={path}"]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()  # neither the benchmark nor any model was looked for


def test_a_user_models_cache_folder_is_its_own_and_keyed_by_what_is_trained(tmp_path):
    model = tmp_path / "my model"
    model.mkdir()
    (model / "config.json").write_text('{"hidden_size": 8}')
    source = tmp_path / "data"
    source.mkdir()
    (source / "full.json").write_text("")
    cfg = load_config([TINY_CONFIG], [f"run.cache_dir={tmp_path / 'cache'}", f"model.path={model}"])
    folder = finetuned_model_dir(cfg, source)
    assert folder.parent == builtin_model_dir(cfg).parent and folder.name.startswith("finetuned-my_model-")
    assert finetuned_model_dir(load_config([TINY_CONFIG], [f"run.cache_dir={tmp_path / 'cache'}",
                                                           f"model.path={model}", "finetune.lr=0.1"]), source) != folder
    (source / "full.json").write_text('{"question": "q", "answer": "a"}\n')
    other_data = finetuned_model_dir(cfg, source)
    (model / "config.json").write_text('{"hidden_size": 16}')
    assert len({folder, other_data, finetuned_model_dir(cfg, source)}) == 3  # other data, then another model

    out = tmp_path / "out"
    (out / "target").mkdir(parents=True)  # models of unknown origin: neither reused nor replaced
    with pytest.raises(RunFolderError, match="without a record of what they were trained from"):
        finetune(cfg, source, out_dir=out, builtin=False)
    assert sorted(p.name for p in out.iterdir()) == ["target"]


@pytest.mark.slow
def test_finetune_of_a_user_model_never_touches_the_builtin_cache(tiny_cache, tmp_path, capsys, one_thread):
    cache = tmp_path / "cache"
    shutil.copytree(tiny_cache, cache)
    (builtin,) = (cache / "models").glob("builtin-*")
    before = _snapshot(builtin)
    args = ["finetune", "--config", TINY_CONFIG, f"run.cache_dir={cache}", f"model.path={builtin / 'target'}",
            "finetune.epochs=1", "trainer.enable_progress_bar=false"]
    assert main(args) == 0
    out = capsys.readouterr().out
    (mine,) = (cache / "models").glob("finetuned-target-*")
    assert f"Target model: {mine / 'target'}\nRetain model: {mine / 'retain90'}" in out and "builtin-" not in out
    assert (mine / MANIFEST).is_file() and _snapshot(builtin) == before
    assert sorted(p.name for p in (cache / "models").iterdir()) == sorted([builtin.name, mine.name])
    trained = _snapshot(mine)

    assert main([*args, "finetune.lr=0.01", "--out", str(mine)]) == 2  # other settings, same folder
    assert "trained from another model, data or settings" in capsys.readouterr().err
    assert main(args) == 0  # the same model, data and settings: reused
    assert f"Target model: {mine / 'target'}" in capsys.readouterr().out
    assert _snapshot(mine) == trained and _snapshot(builtin) == before


# --- compare --out -----------------------------------------------------------------------------------

@pytest.fixture
def runs(tmp_path):
    return [str(write_run(tmp_path / name, "npo", [record(0, 0.01, 0.7), record(1, 0.2, 0.68)], selected=1))
            for name in ("a", "b")]


def test_compare_refuses_to_replace_a_comparison_unless_asked(runs, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["compare", *runs, "--out", str(out), "--title", "first"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["comparison.md", "comparison.png"]
    capsys.readouterr()
    assert main(["compare", *runs, "--out", str(out), "--title", "second"]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'comparison.md'} and {out / 'comparison.png'} already exist" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main(["compare", *runs, "--out", str(out), "--title", "second", "--overwrite"]) == 0
    assert "# second" in (out / "comparison.md").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["comparison.md", "comparison.png"]  # no temporary left

    (tmp_path / "png_only").mkdir()
    (tmp_path / "png_only" / "comparison.png").write_bytes(b"mine")
    assert main(["compare", *runs, "--out", str(tmp_path / "png_only")]) == 2
    assert "comparison.png already exists" in capsys.readouterr().err
    assert (tmp_path / "png_only" / "comparison.png").read_bytes() == b"mine"
    assert main(["compare", *runs]) == 0 and main(["compare", *runs]) == 2  # the default --out too
