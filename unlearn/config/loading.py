"""Loading a run configuration: typed defaults (``unlearn.config.schema``), then YAML files, then ``key=value`` overrides.

Every key is checked against the schema as it arrives, so a misspelt key fails with the closest
valid ones named, wherever it came from (a file, a ``group=name`` selection or the command line).

A YAML file may build on config groups with a top-level ``defaults`` list, as in Hydra::

    defaults:
      - model/tofu_llama2_7b     # configs/model/tofu_llama2_7b.yaml
      - data: tofu               # the same as data/tofu
    optim:
      lr: 1.0e-5                 # the file's own keys merge last, over its defaults

Each entry is ``group/name`` (or ``{group: name}``) under the shipped ``configs/``, or a path ending
in ``.yaml``, relative to the file that names it. Entries merge in order, each composed the same
way first (its own ``defaults``, then its keys), then the file's own keys. An unknown group or name
gives the error a ``group=name`` override gives; files that include each other are an error.

Defaults follow the data: once everything is merged, the data group named like ``data.source``
(``configs/data/tofu.yaml`` for ``tofu``) fills every field that no file or override set, so
``data.source=tofu`` alone gets TOFU's lengths, as ``data=tofu`` does.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from unlearn.config.schema import Config
from unlearn.errors import ConfigError
from unlearn.config.validation import validate


def configs_dir() -> Path:
    """The folder of shipped YAML configs: ``configs/`` of a checkout, or ``unlearn/configs`` once installed."""
    here = Path(__file__).resolve().parent.parent  # the unlearn package
    for candidate in (here / "configs", here.parent / "configs"):
        if candidate.is_dir():
            return candidate
    return here.parent / "configs"


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
    """A YAML path as given, or a name under the shipped ``configs/`` (``experiment/tofu_llama2``)."""
    candidates = [Path(name), configs_dir() / name, configs_dir() / f"{name}.yaml"]
    for path in candidates:
        if path.is_file():
            return path
    folder = next((path for path in candidates[:2] if path.is_dir()), None)
    if folder is not None:
        yamls = sorted(p.name for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        listed = (f"Give one of its YAML files: {', '.join(yamls)}." if yamls else "It holds no YAML files.")
        raise ConfigError(f"Config '{name}': {folder} is a folder, not a config file. {listed}")
    raise ConfigError(f"Config file '{name}' not found (looked at: {', '.join(map(str, candidates))}).")


# Folders of configs/ that hold no run configs: sweep files (python -m unlearn sweep) and recipes' bands.
NOT_GROUPS = ("sweep", "reproduce")


def _groups() -> list[str]:
    """The config groups: the folders of ``configs/`` that hold run configs."""
    if not configs_dir().is_dir():
        return []
    return sorted(p.name for p in configs_dir().iterdir() if p.is_dir() and p.name not in NOT_GROUPS)


def group_file(group: str, name: str, origin: str) -> Path:
    """``configs/<group>/<name>.yaml``.

    Raises:
        ConfigError: no such group, or the group has no file of that name (naming those it has);
            ``origin`` says where the selection was written (``'data=tofoo'``).
    """
    if group not in _groups():
        raise ConfigError(f"{origin}: there is no config group '{group}' in configs/. "
                          f"Choose one of: {', '.join(_groups()) or 'none'}.")
    path = configs_dir() / group / f"{name}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in (configs_dir() / group).glob("*.yaml"))
        raise ConfigError(f"{origin}: there is no config '{name}' in configs/{group}/. "
                          f"Choose one of: {', '.join(names) or 'none'}.")
    return path


def split_group_overrides(overrides) -> tuple[list[str], list[str]]:
    """Separate ``group=name`` selections (``data=tofu``) from ``key=value`` overrides.

    A key without a dot that names a folder of ``configs/`` selects ``configs/<group>/<name>.yaml``,
    as ``--config group/name`` would.

    Raises:
        ConfigError: the group has no file of that name (naming those it has).
    """
    folders = set(_groups())
    groups, rest = [], []
    for item in overrides:
        key, _, value = item.partition("=")
        key = key.strip()
        if "." in key or key not in folders:
            rest.append(item)
            continue
        group_file(key, value.strip(), f"'{item}'")
        groups.append(f"{key}/{value.strip()}")
    return groups, rest


def _read_yaml(path: Path) -> DictConfig:
    try:
        loaded = OmegaConf.load(path)
    except Exception as err:  # YAML syntax errors come in several exception types
        raise ConfigError(f"Cannot parse config file {path}: {err}") from err
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"Config file {path} must hold a mapping of keys, got {type(loaded).__name__}.")
    return loaded


def _defaults_paths(entries: Any, path: Path) -> list[Path]:
    """The files a ``defaults`` list names, in order."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        entries = [entries] if isinstance(entries, str) else None
    if entries is None:
        raise ConfigError(f"'defaults' in config file {path} must be a list such as [model/tofu_llama2_7b, data/tofu].")
    paths = []
    for entry in entries:
        origin = f"defaults entry {entry!r} in config file {path}"
        if isinstance(entry, dict) and len(entry) == 1:
            (group, name), = entry.items()
            paths.append(group_file(str(group), str(name), origin))
        elif isinstance(entry, str) and entry.endswith((".yaml", ".yml")):
            other = path.parent / entry
            if not other.is_file():
                raise ConfigError(f"{origin}: file {other} not found (a .yaml path is relative to the file naming it).")
            paths.append(other)
        elif isinstance(entry, str) and "/" in entry:
            group, _, name = entry.partition("/")
            paths.append(group_file(group, name, origin))
        else:
            raise ConfigError(f"{origin}: write group/name (e.g. data/tofu), {{group: name}} or a path ending in .yaml.")
    return paths


def _fields(schema: DictConfig, data: Any, prefix: str = "") -> dict[str, Any]:
    """The schema fields ``data`` sets, by dotted key: a section's one by one, a dict-valued field whole."""
    fields = {}
    for key, value in (data or {}).items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(OmegaConf.select(schema, path), DictConfig):
            fields.update(_fields(schema, value, path + "."))
        else:
            fields[path] = value
    return fields


def _apply_file(base: DictConfig, path: Path, schema: DictConfig, stack: tuple[Path, ...] = (),
                explicit: set[str] | None = None) -> DictConfig:
    """``base`` with the file's ``defaults`` merged in order (each composed alike), then its own keys.

    ``explicit``, when given, gathers every field the file and its defaults set.
    """
    path = path.resolve()
    if path in stack:
        chain = " -> ".join(str(p) for p in (*stack[stack.index(path):], path))
        raise ConfigError(f"Config files include each other through 'defaults': {chain}.")
    loaded = _read_yaml(path)
    entries = OmegaConf.to_container(loaded).get("defaults")
    loaded.pop("defaults", None)
    for other in _defaults_paths(entries, path):
        base = _apply_file(base, other, schema, (*stack, path), explicit)
    _check_keys(schema, OmegaConf.to_container(loaded), f"config file {path}")
    if explicit is not None:
        explicit |= set(_fields(schema, OmegaConf.to_container(loaded)))
    return _merge(base, loaded, f"config file {path}")


def read_config_file(name: str) -> dict:
    """The keys a YAML file sets, its ``defaults`` composed in: ``read_config_file("loss/simnpo")["loss"]``.

    ``name`` as ``--config`` takes it. Only the file's keys, not the typed defaults; keys are checked.
    """
    schema = OmegaConf.structured(Config)
    return OmegaConf.to_container(_apply_file(OmegaConf.create(), resolve_config_path(name), schema))


def load_config(files: list[str] | tuple[str, ...] = (), overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Merge typed defaults, YAML files (in order) and ``key=value`` overrides.

    A ``group=name`` override (``data=tofu``, ``loss=npo``) merges ``configs/<group>/<name>.yaml``
    after the ``--config`` files and before the ``key=value`` overrides, whatever its place on the
    command line, so ``data=tofu data.forget_split=forget01`` works in either order. Each file's
    ``defaults`` merge just before its own keys (see the module docstring). Last, the data source's
    own defaults fill every field that no file or override set (:func:`_source_defaults`).

    Raises:
        ConfigError: an unknown key (naming the closest valid ones), a value of the wrong type,
            a missing file, an unknown group or group file, files including each other, a malformed
            override, or a value out of range (``unlearn.config.validation``).
    """
    schema = OmegaConf.structured(Config)
    merged, explicit = schema, set()
    groups, overrides = split_group_overrides(overrides)
    for name in [*files, *groups]:
        merged = _apply_file(merged, resolve_config_path(name), schema, explicit=explicit)
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"Override '{item}' is not of the form key=value (e.g. loss.beta=0.2).")
        key = item.split("=", 1)[0].strip()
        if key not in _valid_keys(schema):
            raise _unknown_key_error(key, _valid_keys(schema), "the command line")
        override = OmegaConf.from_dotlist([item])
        merged = _merge(merged, override, f"override '{item}'")
        explicit |= set(_fields(schema, OmegaConf.to_container(override)))
    return validate(OmegaConf.to_object(_source_defaults(merged, explicit, schema)))


def _source_defaults(merged: DictConfig, explicit: set[str], schema: DictConfig) -> DictConfig:
    """``merged`` with the data group named like its ``data.source`` filling every field not in ``explicit``.

    The defaults follow the data, not the group: ``data.source=tofu`` alone gets what ``data=tofu``
    sets (TOFU's ``data.max_length=500`` and ``eval.max_new_tokens=200``), so TOFU's long answers
    and generations are not cut to the built-in benchmark's lengths; a value a file or an override
    set wins. ``configs/data/tofu.yaml`` stays the values' only copy.
    """
    source = merged.data.source
    path = configs_dir() / "data" / f"{source}.yaml"
    if source not in {p.stem for p in path.parent.glob("*.yaml")}:
        return merged  # a source without a group of its own (files), or not a source at all (validation says so)
    group = _fields(schema, OmegaConf.to_container(_apply_file(OmegaConf.create(), path, schema)))
    defaults = OmegaConf.create()
    for key, value in group.items():
        if key not in explicit:
            OmegaConf.update(defaults, key, value)
    return _merge(merged, defaults, f"config file {path} (the defaults of data.source={source})")


def _merge(base: DictConfig, other: DictConfig, origin: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, other)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        detail = str(getattr(err, "msg", err)).splitlines()[0]
        raise ConfigError(f"Invalid value for '{key}' in {origin}: {detail}") from err
