"""Safety rules: no code runs from a config, a checkpoint or a model repository unless the user asks.

- configs name components only through the project's tables; no value is imported or evaluated;
- every ``torch.load`` passes ``weights_only=True`` and Lightning checkpoints load that way too;
- every ``from_pretrained`` passes ``trust_remote_code`` from the config, which defaults to off.
"""

import ast
from pathlib import Path

import pytest
import torch

from unlearn.training.checkpoints import AtomicCheckpointIO
from unlearn.errors import ConfigError
from unlearn.config.loading import load_config
from unlearn.models.loading import load_model, load_tokenizer

PROJECT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(PROJECT / "unlearn").rglob("*.py"), *(PROJECT / "callbacks").rglob("*.py")])


def _calls(name: str):
    """(file, line, call node) for every call of ``*.name(...)`` or ``name(...)`` in the project's code."""
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if called == name:
                    yield path.relative_to(PROJECT), node.lineno, node


def _keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_every_torch_load_is_weights_only():
    def weights_only(call):
        value = _keyword(call, "weights_only")
        return isinstance(value, ast.Constant) and value.value is True

    offenders = [f"{path}:{line}" for path, line, call in _calls("load")
                 if isinstance(call.func, ast.Attribute) and getattr(call.func.value, "id", None) == "torch"
                 and not weights_only(call)]
    assert not offenders, f"torch.load without weights_only=True: {offenders}"


def test_every_from_pretrained_passes_trust_remote_code():
    offenders, calls = [], list(_calls("from_pretrained"))
    assert len(calls) >= 2  # the model and the tokenizer loaders, at least
    for path, line, call in calls:
        explicit = _keyword(call, "trust_remote_code") is not None
        # `**kwargs` counts when the dict it unpacks is built with the key in the same function.
        unpacked = any(k.arg is None for k in call.keywords) and "\"trust_remote_code\"" in (PROJECT / path).read_text()
        if not (explicit or unpacked):
            offenders.append(f"{path}:{line}")
    assert not offenders, f"from_pretrained without trust_remote_code: {offenders}"


def test_no_dynamic_import_or_evaluation_anywhere():
    builtins = {"__import__", "eval", "exec", "compile"}  # bare calls only: `model.eval()` is fine
    importers = {"import_module", "instantiate", "locate", "get_class", "get_method"}
    found = [f"{path}:{line} {name}" for name in builtins | importers for path, line, call in _calls(name)
             if name in importers or isinstance(call.func, ast.Name)]
    assert not found, f"code chosen at run time: {found}"


def test_trust_remote_code_is_off_unless_the_user_turns_it_on(monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    seen = []

    def record(path, **kwargs):
        seen.append(kwargs["trust_remote_code"])
        raise OSError("not a real model")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", record)
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", record)
    assert load_config().model.trust_remote_code is False
    for trust in (False, True):
        for load in (load_model, load_tokenizer):
            with pytest.raises(Exception, match="not a real model"):
                load("some/model", trust_remote_code=trust)
    assert seen == [False, False, True, True]


@pytest.mark.parametrize("override, message", [
    ("loss.name=os.system", "unknown loss 'os.system'; valid losses: ['ce_u', 'dpo', 'ga',"),
    ("loss.name=unlearn.losses.npo.NPO", "unknown loss 'unlearn.losses.npo.NPO'"),
    ("loss._target_=os.system", "Unknown config key 'loss._target_'"),
    ("_target_=os.system", "Unknown config key '_target_'"),
])
def test_config_cannot_name_code(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config([], [override])


def test_yaml_cannot_construct_python_objects(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.yaml"
    path.write_text(f"loss:\n  name: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match="Cannot parse config file"):
        load_config([str(path)])
    assert not marker.exists()


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_lightning_checkpoints_load_weights_only(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "tampered.ckpt"
    torch.save({"state_dict": {}, "payload": RunsCode(str(marker))}, path)
    with pytest.raises(Exception, match="cannot be loaded safely, so it was refused"):
        AtomicCheckpointIO().load_checkpoint(path, weights_only=False)  # the argument cannot turn it off
    assert not marker.exists()
