"""Loading a run configuration: typed defaults (``unlearn.config.schema``), then YAML files, then ``key=value`` overrides.

Every key is checked against the schema as it arrives, so a misspelt key fails with the closest
valid ones named, wherever it came from (a file, a ``group=name`` selection or the command line).
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from unlearn.config.schema import Config, ConfigError
from unlearn.config.validation import validate


def configs_dir() -> Path:
    """The folder of shipped YAML configs (``configs/`` in a checkout)."""
    try:
        shipped = Path(str(resources.files("unlearn.configs")))
        if shipped.is_dir():
            return shipped
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[2] / "configs"


def _valid_keys(node: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for key in node.keys():
        path = f"{prefix}{key}"
        keys.append(path)
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            keys.extend(_valid_keys(child, path + "."))
    return keys


def _unknown_key_error(key: str, valid: list[str], origin: str) -> ConfigError:
    # Compare full dotted paths and leaf names, so both `optim.lrr` and a bare `lr` find `optim.lr`.
    close = difflib.get_close_matches(key, [k for k in valid if k.count(".") == key.count(".")], n=3, cutoff=0.6)
    leaf = key.rsplit(".", 1)[-1]
    close += [k for k in valid if k.rsplit(".", 1)[-1] == leaf and k not in close]
    hint = f" Did you mean {', '.join(repr(k) for k in close[:3])}?" if close else ""
    return ConfigError(f"Unknown config key '{key}' in {origin}.{hint} "
                       f"Run `python -m unlearn fit --show-config` to list every key.")


def _check_keys(schema: DictConfig, data: Any, origin: str, prefix: str = "") -> None:
    """Every dotted key of ``data`` must exist in the schema; nested sections are checked key by key."""
    valid = _valid_keys(schema)
    for key, value in (data or {}).items():
        path = f"{prefix}{key}"
        if path not in valid:
            raise _unknown_key_error(path, valid, origin)
        if isinstance(value, dict) and isinstance(OmegaConf.select(schema, path), DictConfig):
            _check_keys(schema, value, origin, path + ".")


def resolve_config_path(name: str) -> Path:
    """A YAML path as given, or a name under the shipped ``configs/`` (``experiment/npo_forget10``)."""
    candidates = [Path(name), configs_dir() / name, configs_dir() / f"{name}.yaml"]
    for path in candidates:
        if path.is_file():
            return path
    raise ConfigError(f"Config file '{name}' not found (looked at: {', '.join(map(str, candidates))}).")


def split_group_overrides(overrides) -> tuple[list[str], list[str]]:
    """Separate ``group=name`` selections (``data=tofu_local``) from ``key=value`` overrides.

    A key without a dot that names a folder of ``configs/`` selects ``configs/<group>/<name>.yaml``,
    as ``--config group/name`` would.

    Raises:
        ConfigError: the group has no file of that name (naming those it has).
    """
    folders = {p.name for p in configs_dir().iterdir() if p.is_dir()} if configs_dir().is_dir() else set()
    groups, rest = [], []
    for item in overrides:
        key, _, value = item.partition("=")
        key = key.strip()
        if "." in key or key not in folders:
            rest.append(item)
            continue
        if not (configs_dir() / key / f"{value.strip()}.yaml").is_file():
            names = sorted(p.stem for p in (configs_dir() / key).glob("*.yaml"))
            raise ConfigError(f"'{item}': there is no config '{value.strip()}' in configs/{key}/. "
                              f"Choose one of: {', '.join(names) or 'none'}.")
        groups.append(f"{key}/{value.strip()}")
    return groups, rest


def load_config(files: list[str] | tuple[str, ...] = (), overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Merge typed defaults, YAML files (in order) and ``key=value`` overrides.

    A ``group=name`` override (``data=tofu_local``, ``loss=npo``) merges ``configs/<group>/<name>.yaml``
    after the ``--config`` files and before the ``key=value`` overrides, whatever its place on the
    command line, so ``data=tofu_local data.forget_split=forget01`` works in either order.

    Raises:
        ConfigError: an unknown key (naming the closest valid ones), a value of the wrong type,
            a missing file, a malformed override, or a value out of range (``unlearn.config.validation``).
    """
    schema = OmegaConf.structured(Config)
    merged = schema
    groups, overrides = split_group_overrides(overrides)
    for name in [*files, *groups]:
        path = resolve_config_path(name)
        try:
            loaded = OmegaConf.load(path)
        except Exception as err:  # YAML syntax errors come in several exception types
            raise ConfigError(f"Cannot parse config file {path}: {err}") from err
        if not isinstance(loaded, DictConfig):
            raise ConfigError(f"Config file {path} must hold a mapping of keys, got {type(loaded).__name__}.")
        _check_keys(schema, OmegaConf.to_container(loaded), f"config file {path}")
        merged = _merge(merged, loaded, f"config file {path}")
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"Override '{item}' is not of the form key=value (e.g. loss.beta=0.2).")
        key = item.split("=", 1)[0].strip()
        if key not in _valid_keys(schema):
            raise _unknown_key_error(key, _valid_keys(schema), "the command line")
        merged = _merge(merged, OmegaConf.from_dotlist([item]), f"override '{item}'")
    return validate(OmegaConf.to_object(merged))


def _merge(base: DictConfig, other: DictConfig, origin: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, other)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        detail = str(getattr(err, "msg", err)).splitlines()[0]
        raise ConfigError(f"Invalid value for '{key}' in {origin}: {detail}") from err
