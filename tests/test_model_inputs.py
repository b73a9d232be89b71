"""Bad models and configs give messages that say what is wrong, and no advice that does not apply.

docs/reliability.md, "Models and configs", lists each case with the test here that pins it.
"""

import re
from pathlib import Path

import pytest
import torch

from tests.helpers import TINY_CONFIG, tiny_model, tiny_tokenizer
from unlearn.cli import main
from unlearn.config.loading import resolve_config_path
from unlearn.errors import ConfigError, ModelLoadError
from unlearn.models.context import check_context_length, context_limit
from unlearn.models.loading import load_model, load_tokenizer
from unlearn.models.safe_load import UnsafeFileError
from unlearn.training.checkpoints import AtomicCheckpointIO, checkpoint_config

TORCH_ADVICE = ("weights_only", "add_safe_globals", "safe_globals")


class RunsCode:
    """A pickle that would touch ``marker`` when unpickled without weights_only."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """``full`` (model and tokenizer), ``weights_only`` (no tokenizer), ``short`` (64-token context)."""
    root = tmp_path_factory.mktemp("models")
    tokenizer = tiny_tokenizer()
    tiny_model(tokenizer).save_pretrained(root / "weights_only")
    for name, size in (("full", 512), ("short", 64)):
        tiny_model(tokenizer, max_position_embeddings=size).save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    (root / "model.safetensors").write_bytes((root / "full" / "model.safetensors").read_bytes())
    return root


def _fit(tmp_path, *overrides, cache=None):
    return main(["fit", "--config", TINY_CONFIG, f"run.cache_dir={cache or tmp_path / 'cache'}",
                 f"run.output_dir={tmp_path / 'runs'}", "run.name=x", *overrides])


# 1. model.path that is a file
def test_a_model_path_that_is_a_file_says_so(saved):
    weights = str(saved / "model.safetensors")
    for load, what in ((load_model, "causal language model"), (load_tokenizer, "tokenizer")):
        with pytest.raises(ModelLoadError) as err:
            load(weights)
        message = str(err.value)
        assert f"Cannot load {what} from '{weights}': it is a file, not a model folder." in message
        assert "folder exists" not in message and "JSON" not in message


def test_fit_and_finetune_of_a_file_say_it_is_a_file(saved, tmp_path, capsys, tiny_cache):
    weights = saved / "model.safetensors"
    assert _fit(tmp_path, f"model.path={weights}", cache=tiny_cache) == 1
    assert "it is a file, not a model folder" in capsys.readouterr().err
    assert main(["finetune", "--config", TINY_CONFIG, f"run.cache_dir={tmp_path / 'cache'}",
                 f"model.path={weights}"]) == 1
    assert f"model.path={weights}: it is a file, not a model folder." in capsys.readouterr().err
    assert not (tmp_path / "runs" / "x").exists() and not (tmp_path / "cache").exists()


def test_the_neighbours_of_a_file_keep_their_messages(saved, tmp_path):
    with pytest.raises(ModelLoadError, match="no such local folder, and not reachable as a Hugging Face hub id"):
        load_model(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="the folder exists but does not hold a loadable causal language "
                                             "model. It has no config.json."):
        load_model(str(tmp_path / "empty"))
    assert load_model(str(saved / "full")).config.max_position_embeddings == 512


# 2. --config given a folder
def test_a_config_folder_says_so_and_lists_its_yaml_files(tmp_path, capsys):
    folder = tmp_path / "configs"
    folder.mkdir()
    for name in ("b.yml", "a.yaml", "notes.txt"):
        (folder / name).write_text("{}\n")
    assert main(["fit", "--config", str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"error: Config '{folder}': {folder} is a folder, not a config file. Give one of its YAML files: " \
           "a.yaml, b.yml." in err
    assert "not found" not in err and "Traceback" not in err
    (tmp_path / "bare").mkdir()
    with pytest.raises(ConfigError, match="is a folder, not a config file. It holds no YAML files."):
        resolve_config_path(str(tmp_path / "bare"))


def test_a_shipped_group_given_as_config_lists_its_files_and_a_missing_file_is_not_found(tmp_path):
    with pytest.raises(ConfigError, match=r"configs/loss is a folder, not a config file. .*simnpo.yaml"):
        resolve_config_path("loss")
    with pytest.raises(ConfigError, match="Config file '.*missing.yaml' not found"):
        resolve_config_path(str(tmp_path / "missing.yaml"))
    assert resolve_config_path(TINY_CONFIG) == Path(TINY_CONFIG)


# 3. tokenizer errors
def test_a_folder_without_tokenizer_files_names_the_files_looked_for(saved, tmp_path, capsys, tiny_cache):
    with pytest.raises(ModelLoadError) as err:
        load_tokenizer(str(saved / "weights_only"))
    message = str(err.value)
    assert "It has none of the tokenizer files (tokenizer.json, tokenizer_config.json, tokenizer.model" in message
    assert "sentencepiece or tiktoken installed" not in message
    assert _fit(tmp_path, f"model.path={saved / 'weights_only'}", cache=tiny_cache) == 1
    err = capsys.readouterr().err
    assert "It has none of the tokenizer files" in err and "installed" not in err


def test_a_broken_tokenizer_folder_gets_no_sentencepiece_advice(saved, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "tokenizer_config.json").write_text((saved / "full" / "tokenizer_config.json").read_text())
    with pytest.raises(ModelLoadError) as err:
        load_tokenizer(str(broken))
    assert "does not hold a loadable tokenizer" in str(err.value)
    assert "sentencepiece" not in str(err.value) and "tiktoken" not in str(err.value)
    assert load_tokenizer(str(saved / "full")).eos_token is not None  # a complete folder still loads


# 4. refused pickles
def _tampered(path, marker):
    torch.save({"state_dict": {}, "payload": RunsCode(str(marker))}, path)
    return path


def _assert_refused(message, path):
    assert re.search(re.escape(str(path)) + r" holds Python objects \(getattr\) that cannot be loaded safely, so "
                     "it was refused: loading them could run code written into the file.", message), message
    assert "Delete it" in message
    assert not any(advice in message for advice in TORCH_ADVICE), message


def test_a_tampered_checkpoint_is_refused_without_torchs_advice(tmp_path):
    marker = tmp_path / "ran"
    path = _tampered(tmp_path / "last.ckpt", marker)
    for load in (AtomicCheckpointIO().load_checkpoint, checkpoint_config):
        with pytest.raises(UnsafeFileError) as err:
            load(path)
        _assert_refused(str(err.value), path)
    assert not marker.exists()
    torch.save({"callbacks": {"RunConfig": {"config": "run: {}\n"}}}, tmp_path / "good.ckpt")
    assert checkpoint_config(tmp_path / "good.ckpt") == "run: {}\n"  # a plain checkpoint still loads


def test_resuming_a_tampered_checkpoint_is_refused(tmp_path, capsys):
    marker = tmp_path / "ran"
    (tmp_path / "runs" / "x" / "checkpoints").mkdir(parents=True)
    path = _tampered(tmp_path / "runs" / "x" / "checkpoints" / "last.ckpt", marker)
    assert _fit(tmp_path, "--resume") == 1
    err = capsys.readouterr().err
    assert "error: run.resume=true: " in err and "Traceback" not in err
    _assert_refused(err, path)
    assert not marker.exists()


def test_a_model_folder_with_a_tampered_pickle_is_refused(saved, tmp_path):
    marker = tmp_path / "ran"
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text((saved / "full" / "config.json").read_text())
    _tampered(folder / "pytorch_model.bin", marker)
    with pytest.raises(UnsafeFileError) as err:
        load_model(str(folder))
    _assert_refused(str(err.value), folder / "pytorch_model.bin")
    assert "save_pretrained (which writes safetensors)" in str(err.value)
    assert not marker.exists()


# 5. data.max_length longer than the model's context
def test_a_max_length_beyond_the_models_context_is_refused(saved, tmp_path, capsys, tiny_cache):
    assert _fit(tmp_path, f"model.path={saved / 'short'}", "data.max_length=128", cache=tiny_cache) == 2
    err = capsys.readouterr().err
    assert (f"error: data.max_length=128 is longer than the context of the model {saved / 'short'} "
            "(max_position_embeddings=64 in its config)") in err
    assert "Set data.max_length=64 or less." in err
    assert not (tmp_path / "runs" / "x").exists()
    assert main(["finetune", "--config", TINY_CONFIG, f"run.cache_dir={tmp_path / 'cache'}",
                 f"model.path={saved / 'short'}", "data.max_length=128"]) == 2
    assert "max_position_embeddings=64" in capsys.readouterr().err


def test_the_neighbours_of_the_context_check_pass(saved, tmp_path, tiny_cache):
    check_context_length([str(saved / "short")], 64)  # exactly the context: fine
    check_context_length([str(saved / "full"), None], 512)
    check_context_length([str(tmp_path / "nope"), str(saved / "model.safetensors")], 10_000)  # loaders explain
    assert context_limit(str(saved / "short")) == 64
    with pytest.raises(ConfigError, match="max_position_embeddings=64"):
        check_context_length([str(saved / "full"), str(saved / "short")], 65)  # the retain model counts too
    builtin = next(p for p in (tiny_cache / "models").iterdir() if p.name.startswith("builtin-"))
    assert all(context_limit(str(m)) >= 512 for m in builtin.iterdir() if (m / "config.json").is_file())
