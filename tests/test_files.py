"""Atomic files and folders (unlearn.files) and cache keys (unlearn.identity)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import asdict

import pytest

from unlearn import files
from unlearn.files import atomic_folder, atomic_write, atomic_write_text, install_folder, recover_folder, temp_sibling
from unlearn.identity import model_identity, short_hash, stable_json


def test_helpers_import_no_torch():
    code = "import sys, unlearn.files, unlearn.identity; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_atomic_text_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "summary.json"
    atomic_write_text(path, "first")
    atomic_write_text(path, "second")
    assert path.read_text() == "second"
    assert [p.name for p in path.parent.iterdir()] == ["summary.json"]


def test_failed_write_keeps_the_old_content_and_removes_the_temporary(tmp_path):
    path = tmp_path / "summary.json"
    atomic_write_text(path, '{"done": true}')

    def crash_half_way(tmp):
        tmp.write_text('{"do')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash_half_way)
    assert path.read_text() == '{"done": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_writer_form_and_bytes(tmp_path):
    atomic_write(tmp_path / "a.bin", lambda tmp: tmp.write_bytes(b"\x00\x01"))
    atomic_write(tmp_path / "b.bin", b"\x02")
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01" and (tmp_path / "b.bin").read_bytes() == b"\x02"


def test_temporary_names_are_hidden_unique_and_per_process(tmp_path):
    a, b = temp_sibling(tmp_path / "last.ckpt"), temp_sibling(tmp_path / "last.ckpt")
    assert a != b and a.parent == tmp_path
    assert a.name.startswith(".last.ckpt.") and a.name.endswith(".partial") and f".{os.getpid()}." in a.name


def _folder(path, text):
    path.mkdir()
    (path / "weights.safetensors").write_text(text)


def test_atomic_folder_writes_new_and_refuses_existing_unless_replace(tmp_path):
    out = tmp_path / "selected"
    with atomic_folder(out) as staging:
        assert not staging.exists() and staging.parent == tmp_path
        _folder(staging, "epoch 1")
    assert (out / "weights.safetensors").read_text() == "epoch 1"
    with pytest.raises(FileExistsError):
        with atomic_folder(out) as staging:
            pass
    with atomic_folder(out, replace=True) as staging:
        _folder(staging, "epoch 2")
    assert (out / "weights.safetensors").read_text() == "epoch 2"
    assert [p.name for p in tmp_path.iterdir()] == ["selected"]


def test_failed_folder_write_keeps_the_old_folder_and_leaves_no_staging(tmp_path):
    out = tmp_path / "selected"
    with atomic_folder(out) as staging:
        _folder(staging, "good")
    with pytest.raises(RuntimeError):
        with atomic_folder(out, replace=True) as staging:
            _folder(staging, "half")
            raise RuntimeError("disk full")
    assert (out / "weights.safetensors").read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["selected"]


def test_crash_between_the_two_renames_keeps_the_previous_folder_and_recovers(tmp_path, monkeypatch):
    out = tmp_path / "selected"
    with atomic_folder(out) as staging:
        _folder(staging, "good")
    real_rename, calls = os.rename, []

    def die_on_second_rename(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the old folder is aside, the new one not yet in place
            raise KeyboardInterrupt  # stands for the process being killed
        real_rename(src, dst)

    monkeypatch.setattr(files.os, "rename", die_on_second_rename)
    with pytest.raises(KeyboardInterrupt):
        with atomic_folder(out, replace=True) as staging:
            _folder(staging, "new")
    monkeypatch.setattr(files.os, "rename", real_rename)
    assert not out.exists()
    assert (tmp_path / "selected.old" / "weights.safetensors").read_text() == "good"  # never lost

    recover_folder(out)  # what the next write (or a reader) does first
    assert (out / "weights.safetensors").read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["selected"]


def test_next_write_recovers_and_a_finished_swap_drops_the_old_copy(tmp_path):
    out = tmp_path / "selected"
    _folder(tmp_path / "selected.old", "good")  # crash between the renames
    with atomic_folder(out, replace=True) as staging:
        _folder(staging, "newer")
    assert (out / "weights.safetensors").read_text() == "newer"
    assert [p.name for p in tmp_path.iterdir()] == ["selected"]
    _folder(tmp_path / "selected.old", "older")  # crash after the second rename: the new one is in place
    recover_folder(out)
    assert (out / "weights.safetensors").read_text() == "newer"
    assert [p.name for p in tmp_path.iterdir()] == ["selected"]


def test_install_folder_moves_a_complete_folder_over_an_existing_one(tmp_path):
    _folder(tmp_path / "selected", "best")
    _folder(tmp_path / "model", "final")
    with pytest.raises(FileExistsError):
        install_folder(tmp_path / "selected", tmp_path / "model")
    install_folder(tmp_path / "selected", tmp_path / "model", replace=True)
    assert (tmp_path / "model" / "weights.safetensors").read_text() == "best"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_staging_of_dead_processes_is_swept_and_live_ones_are_kept(tmp_path):
    out = tmp_path / "model"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = temp_sibling(out).name.replace(f".{os.getpid()}.", f".{dead.pid}.")
    live = temp_sibling(out).name.replace(f".{os.getpid()}.", f".{os.getppid()}.")
    other_host = f".model.elsewhere.{dead.pid}.abcd.partial"
    for name in (stale, live, other_host):
        _folder(tmp_path / name, "partial")
    recover_folder(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live, other_host])


def test_short_hash_is_stable_and_ignores_key_order():
    assert short_hash({"b": [1, 2], "a": {"y": 1, "x": 2}}) == short_hash({"a": {"x": 2, "y": 1}, "b": [1, 2]})
    expected = hashlib.sha256(json.dumps({"a": 1, "b": 2}, sort_keys=True).encode()).hexdigest()
    assert short_hash({"b": 2, "a": 1}) == expected[:16] and short_hash({"b": 2, "a": 1}, length=12) == expected[:12]
    assert short_hash("text") == short_hash(b"text") == hashlib.sha256(b"text").hexdigest()[:16]  # as given
    assert stable_json({"b": 1, "a": 2}) == '{"a": 2, "b": 1}'
    with pytest.raises(TypeError):
        stable_json({"model": object()})  # never silently hashed as its repr


def test_builtin_cache_folders_keep_their_names(tmp_path):
    from unlearn.config.schema import Config
    from unlearn.data.sources import builtin_benchmark_dir
    from unlearn.data.synthetic import BenchmarkSpec
    from unlearn.training.model_cache import builtin_model_dir

    spec = BenchmarkSpec()
    legacy = hashlib.sha256(json.dumps(asdict(spec), sort_keys=True).encode()).hexdigest()[:12]
    folder = tmp_path / "benchmarks" / f"builtin-{legacy}"
    folder.mkdir(parents=True)
    (folder / "full.json").write_text("")  # present: found, not generated again
    assert builtin_benchmark_dir(tmp_path, spec) == folder

    cfg = Config()
    cfg.run.cache_dir = str(tmp_path)
    key = {"data": asdict(cfg.data.builtin), "model": asdict(cfg.model.builtin),
           "finetune": asdict(cfg.finetune), "format": cfg.model.prompt_format,
           "max_length": cfg.data.max_length, "seed": cfg.run.seed}
    folder_name = lambda k: f"builtin-{hashlib.sha256(json.dumps(k, sort_keys=True).encode()).hexdigest()[:12]}"  # noqa: E731
    assert builtin_model_dir(cfg).name == folder_name({**key, "tokenizer_texts": "with-holdout"})
    # Models cached by releases whose tokenizer never saw the holdout authors are not taken for these.
    assert builtin_model_dir(cfg).name != folder_name(key)


def test_model_identity_changes_with_a_weight_file_or_config_json(tmp_path):
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text('{"hidden_size": 8}')
    (model / "sub" / "model.safetensors").write_bytes(b"w" * 10)
    (model / "README.md").write_text("not part of the model")
    first = model_identity(model)
    assert first["path"] == str(model.resolve())
    assert [f[0] for f in first["files"]] == ["config.json", "sub/model.safetensors"]
    assert model_identity(str(model)) == first and short_hash(model_identity(model)) == short_hash(first)

    (model / "README.md").write_text("edited")
    assert model_identity(model) == first
    (model / "config.json").write_text('{"hidden_size": 16}')
    second = model_identity(model)
    assert second != first
    (model / "sub" / "model.safetensors").write_bytes(b"w" * 10)
    os.utime(model / "sub" / "model.safetensors", ns=(1, 1))  # same size, retrained: a new time
    assert model_identity(model) != second


def test_model_identity_of_a_hub_id_follows_the_cached_revision(monkeypatch):
    import unlearn.identity as identity

    monkeypatch.setattr(identity, "_hub_revision", lambda repo_id, repo_type=None: None)
    assert model_identity("org/not-cached") == {"id": "org/not-cached"}
    monkeypatch.setattr(identity, "_hub_revision", lambda repo_id, repo_type=None: "abc123")
    assert model_identity("org/model") == {"id": "org/model", "revision": "abc123"}


@pytest.mark.parametrize("precision", ["bf16-true", "bf16-mixed"])
def test_models_trained_at_lower_precision_get_their_own_cache_folder(tmp_path, precision):
    # A bf16-true run once took the full-precision models' folder, and a later fp32 run unlearned bf16 weights.
    from unlearn.config.schema import Config
    from unlearn.training.assets import hazard_model_dir, muse_model_dir
    from unlearn.training.model_cache import builtin_model_dir, scratch_model_dir

    def folders(value):
        cfg = Config()
        cfg.run.cache_dir = str(tmp_path)
        if value is not None:
            cfg.trainer.precision = value
        return [builtin_model_dir(cfg), scratch_model_dir(cfg, tmp_path), muse_model_dir(cfg), hazard_model_dir(cfg)]

    assert folders(None) == folders("32-true") == folders("32")  # full precision keeps the folders it always had
    assert all(low != full for low, full in zip(folders(precision), folders(None)))


def test_models_trained_on_a_gpu_get_their_own_cache_folder(tmp_path, monkeypatch):
    # The same seed's fp32 TOFU target from scratch scored utility 0.453 on a CPU and 0.396 on a GPU: one cache
    # shared between machines must not hand either for the other.
    import torch

    from unlearn.config.schema import Config
    from unlearn.training.assets import hazard_model_dir, muse_model_dir
    from unlearn.training.model_cache import builtin_model_dir, scratch_model_dir, training_device

    def folders(accelerator):
        cfg = Config()
        cfg.run.cache_dir, cfg.trainer.accelerator = str(tmp_path), accelerator
        return [builtin_model_dir(cfg), scratch_model_dir(cfg, tmp_path), muse_model_dir(cfg), hazard_model_dir(cfg)]

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU machine, wherever the test runs
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    on_cpu = folders("auto")
    assert on_cpu == folders("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert training_device("auto") == training_device("gpu") == "cuda" and training_device("cpu") == "cpu"
    assert folders("cpu") == on_cpu  # asked for the CPU, trained there: the CPU's folders
    assert on_cpu[0].name == "builtin-3e17f89b9c1d"  # the default built-in models' folder since it was first keyed
    assert all(gpu != cpu for gpu, cpu in zip(folders("auto"), on_cpu))


def test_models_trained_on_local_data_are_keyed_by_its_content_not_its_place_or_times(tmp_path):
    # A restored copy of TOFU's files (same bytes, new times) once sent a sweep back to retraining three seeds'
    # models, an hour on 2 CPU cores.
    import shutil

    from unlearn.config.schema import Config
    from unlearn.training.model_cache import scratch_model_dir

    cfg = Config()
    cfg.run.cache_dir = str(tmp_path / "cache")
    data = tmp_path / "a" / "tofu"
    data.mkdir(parents=True)
    (data / "full.json").write_text('[{"question": "q", "answer": "a"}]')
    (data / "forget10.json").write_text('[{"question": "f", "answer": "g"}]')
    first = scratch_model_dir(cfg, data)
    copy = tmp_path / "b" / "tofu"
    shutil.copytree(data, copy)  # another place, new times
    os.utime(copy / "full.json", ns=(1, 1))
    assert scratch_model_dir(cfg, copy) == first
    (copy / "README.md").write_text("not data")
    assert scratch_model_dir(cfg, copy) == first
    (copy / "holdout10.json").write_text("[]")  # no model trains on them, but the tokenizer learns their text
    assert scratch_model_dir(cfg, copy) != first
    (copy / "holdout10.json").unlink()
    (copy / "full.json").write_text('[{"question": "q", "answer": "b"}]')  # same size, other content
    assert scratch_model_dir(cfg, copy) != first
