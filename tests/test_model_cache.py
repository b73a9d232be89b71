"""Cache folders of trained models: found again by the data's content, and taken over from the earlier key."""

import json
import os
import shutil

import pytest

from unlearn.config.schema import Config
from unlearn.errors import RunFolderError
from unlearn.training.model_cache import (MANIFEST, _legacy_data_identity, claim, finetune_key, finetuned_model_dir,
                                          model_cache_dir, scratch_model_dir)


def _data(folder):
    folder.mkdir(parents=True)
    (folder / "full.json").write_text('[{"question": "q", "answer": "a"}]')
    (folder / "forget10.json").write_text('[{"question": "f", "answer": "g"}]')
    return folder


def _cfg(tmp_path):
    cfg = Config()
    cfg.run.cache_dir = str(tmp_path / "cache")
    return cfg


def _legacy_scratch_dir(cfg, data):
    """Where a release before content keys cached the models trained from scratch on ``data``."""
    return model_cache_dir(cfg, f"scratch-{data.name}", {"data": _legacy_data_identity(data),
                                                         "format": cfg.model.prompt_format})


def test_models_cached_under_the_earlier_key_of_unchanged_files_are_taken_over(tmp_path):
    cfg, data = _cfg(tmp_path), _data(tmp_path / "tofu")
    legacy = _legacy_scratch_dir(cfg, data)
    (legacy / "target").mkdir(parents=True)
    (legacy / "target" / "model.safetensors").write_bytes(b"weights")
    folder = scratch_model_dir(cfg, data)
    assert folder != legacy and not legacy.exists()
    assert (folder / "target" / "model.safetensors").read_bytes() == b"weights"
    assert scratch_model_dir(cfg, data) == folder  # found again, now under its own key


def test_the_folder_an_earlier_release_named_is_taken_over(tmp_path):
    # The earlier key written out by hand, as releases before content keys built it: the folder's resolved path,
    # and each file's relative path, size and modification time (holdout files left out).
    cfg, data = _cfg(tmp_path), _data(tmp_path / "tofu")
    (data / "holdout10.json").write_text("[]")
    files = [[name, (data / name).stat().st_size, (data / name).stat().st_mtime_ns]
             for name in ("forget10.json", "full.json")]
    legacy = model_cache_dir(cfg, "scratch-tofu", {"data": {"path": str(data.resolve()), "files": files},
                                                   "format": cfg.model.prompt_format})
    (legacy / "target").mkdir(parents=True)
    assert (scratch_model_dir(cfg, data) / "target").is_dir() and not legacy.exists()


def test_models_of_a_hub_dataset_are_not_taken_for_its_cached_revision(tmp_path, monkeypatch):
    # The earlier key of a hub dataset was its id alone: which revision those models learned is unknown.
    import unlearn.identity as identity
    from unlearn.identity import short_hash

    cfg = _user_model(tmp_path)
    legacy = tmp_path / "cache" / "models" / \
        f"finetuned-my-model-{short_hash(finetune_key(cfg, 'org/data', {'id': 'org/data'}))}"
    legacy.mkdir(parents=True)
    # A dataset's snapshot is cached; as a model repo (how the earlier key looked it up) the id has none.
    monkeypatch.setattr(identity, "_hub_revision", lambda repo_id, repo_type=None: repo_type and "abc123")
    folder = finetuned_model_dir(cfg, "org/data")
    assert folder != legacy and not folder.exists() and legacy.is_dir()


def test_models_of_files_changed_since_are_not_taken_over(tmp_path):
    cfg, data = _cfg(tmp_path), _data(tmp_path / "tofu")
    legacy = _legacy_scratch_dir(cfg, data)
    legacy.mkdir(parents=True)
    os.utime(data / "full.json", ns=(1, 1))  # the earlier key held the files' times: these may have changed
    folder = scratch_model_dir(cfg, data)
    assert not folder.exists() and legacy.is_dir()


def test_the_same_files_under_another_folder_name_find_the_same_models(tmp_path):
    cfg = _cfg(tmp_path)
    first = scratch_model_dir(cfg, _data(tmp_path / "tofu"))
    first.mkdir(parents=True)
    copy = tmp_path / "elsewhere" / "TOFU_data"
    shutil.copytree(tmp_path / "tofu", copy)
    assert scratch_model_dir(cfg, copy) == first


def _user_model(tmp_path):
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    cfg = _cfg(tmp_path)
    cfg.model.path = str(model)
    return cfg


def test_a_fine_tuning_record_of_the_earlier_key_is_rewritten_not_refused(tmp_path):
    cfg, data = _user_model(tmp_path), _data(tmp_path / "tofu")
    out = tmp_path / "out"
    (out / "target").mkdir(parents=True)
    (out / MANIFEST).write_text(json.dumps(finetune_key(cfg, data, _legacy_data_identity(data))))
    claim(out, cfg, data, [out / "target"])
    assert json.loads((out / MANIFEST).read_text()) == json.loads(json.dumps(finetune_key(cfg, data)))
    cfg.finetune.epochs += 1  # other settings: refused, and the record is left as it was
    with pytest.raises(RunFolderError, match="another model, data or settings"):
        claim(out, cfg, data, [out / "target"])
    assert json.loads((out / MANIFEST).read_text())["finetune"]["epochs"] == cfg.finetune.epochs - 1


def test_a_fine_tuned_cache_folder_of_the_earlier_key_is_taken_over(tmp_path):
    from unlearn.identity import short_hash

    cfg, data = _user_model(tmp_path), _data(tmp_path / "tofu")
    legacy = tmp_path / "cache" / "models" / \
        f"finetuned-my-model-{short_hash(finetune_key(cfg, data, _legacy_data_identity(data)))}"
    legacy.mkdir(parents=True)
    folder = finetuned_model_dir(cfg, data)
    assert folder.is_dir() and not legacy.exists() and folder.name.startswith("finetuned-my-model-")


def test_only_the_files_finetune_reads_make_the_key(tmp_path):
    cfg, data = _cfg(tmp_path), _data(tmp_path / "tofu")
    first = scratch_model_dir(cfg, data)
    (data / ".ipynb_checkpoints").mkdir()
    (data / ".ipynb_checkpoints" / "full-checkpoint.json").write_text("[]")  # not read by finetune
    (data / "notes.txt").write_text("where these files came from")
    assert scratch_model_dir(cfg, data) == first
    (data / "idontknow.jsonl").write_text("I don't know.\n")  # the built-in tokenizer learns its text
    assert scratch_model_dir(cfg, data) != first


def test_a_hub_dataset_is_keyed_by_its_cached_dataset_revision(monkeypatch):
    import huggingface_hub

    from unlearn.identity import data_identity

    asked = []

    def snapshot_download(repo_id, repo_type=None, local_files_only=False):
        asked.append((repo_id, repo_type, local_files_only))
        return f"/hub/datasets--{repo_id.replace('/', '--')}/snapshots/abc123"

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    assert data_identity("locuslab/TOFU") == {"id": "locuslab/TOFU", "revision": "abc123"}
    assert asked == [("locuslab/TOFU", "dataset", True)]  # a dataset's snapshot, never a download
