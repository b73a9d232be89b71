"""Sweep files: a YAML that names many ``fit`` runs, read and expanded into the list of runs.

A sweep file (``configs/sweep/*.yaml``; docs/reproduce.md has the whole format)::

    description: what the sweep is for
    base:                                 # every run, as `fit` takes them
      configs: [experiment/tofu_llama2]   # --config files (paths or names under configs/)
      overrides: [eval.max_rows=300]      # key=value or group=name
    seeds: [1001, 1002, 1003]             # optional: each setting once per seed
    seed_keys: [run.seed, data.seed]      # the keys a seed sets (this is the default)
    env: {OMP_NUM_THREADS: "1"}           # optional: environment of every run
    set: {trainer.max_epochs: 10}         # fixed settings of every run
    axes:                                 # the cartesian product, first axis outermost
      data.forget_split: [forget05, forget10]
      loss: [npo, simnpo]                 # a group selection, as loss=npo on the command line
    cases:                                # settings of the runs that match `when`
      - when: {loss: simnpo, data.forget_split: forget05}
        set: {loss: simnpo_forget05}      # replaces the value the axis gave
      - when: {loss: npo}
        axes: {loss.beta: [0.05, 0.1]}    # swept for these runs only (a per-method axis)
    requires: gpu                         # optional: refused where torch sees no GPU (check_requirements)
    report: {seeds_needed: {model utility: 0.03}}   # optional sections of results.md (experiments/report.py)

Instead of top-level ``set``/``axes``/``cases``, ``groups`` maps group names to blocks of those
three keys (plus an optional ``name`` template); their runs are concatenated. An axis value may be
a mapping, which sets several keys together (a zipped axis; its ``name`` entry, if any, names it).
Values are written as on the command line: a YAML list in ``axes`` is the values to sweep, a list
in ``set`` is one list value (``data.builtin.forget_percents: [1, 5, 10, 50]``).

A run's name joins its swept values (``forget10_npo_beta0.1``: the values of ``loss``,
``loss.name`` and ``data.forget_split`` bare, others after the key's last part), or follows the
group's ``name`` template (``"long_{loss.name}"``), then ``_seed<N>`` when the file has seeds.
Names must be unique in the sweep: they are the run folders (``<out>/<group>/<name>``).
"""

from __future__ import annotations

import fnmatch
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from unlearn.errors import ConfigError

TOP_KEYS = {"description", "base", "seeds", "seed_keys", "env", "set", "axes", "cases", "groups", "overview",
            "requires", "report"}
BLOCK_KEYS = {"set", "axes", "cases", "name"}
CASE_KEYS = {"when", "set", "axes"}
DEFAULT_SEED_KEYS = ("run.seed", "data.seed")
BARE_KEYS = ("loss", "loss.name", "data.forget_split")  # named by their value alone
DEFAULT_GROUP = "runs"
REQUIREMENTS = ("gpu",)  # what a sweep file or recipe may need of the machine: `requires: gpu`


class SweepFileError(ConfigError):
    """A sweep file that cannot be read or expanded (exit code 2, as for any configuration error)."""


def requirements(value: Any, origin: Path | str) -> tuple[str, ...]:
    """``requires: gpu`` (or a list of such names) as a tuple; anything not in :data:`REQUIREMENTS` is refused."""
    values = [value] if isinstance(value, str) else value or []
    if not isinstance(values, list) or set(values) - set(REQUIREMENTS):
        raise SweepFileError(f"{origin}: 'requires' takes {' or '.join(REQUIREMENTS)} (or a list of them), "
                             f"got {value!r}.")
    return tuple(values)


def check_requirements(requires: tuple[str, ...], what: str, how: str) -> None:
    """Refuse runs that need a GPU on a machine without one, before any starts (a ``fit`` on the CPU would load the
    models, score the reference and evaluate the retain model before its Trainer fails); ``how``: what to do."""
    import torch  # here, not at the top: reading a sweep file imports no torch
    if "gpu" in requires and not torch.cuda.is_available():
        raise SweepFileError(f"{what} needs a GPU (requires: gpu) and this machine has none "
                             f"(torch.cuda.is_available() is False). {how}")


def text(value: Any) -> str:
    """A YAML value as ``key=value`` takes it on the command line: true, null, 1e-05, [1,5,10]."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(text(v) for v in value) + "]"
    return str(value)


@dataclass(frozen=True)
class Run:
    """One ``fit`` run of a sweep: its group, name, seed and settings (``key=value`` after the base)."""

    group: str
    point: str  # the setting's name, the same for every seed
    seed: int | None
    settings: tuple[tuple[str, str], ...]

    @property
    def name(self) -> str:
        return self.point if self.seed is None else f"{self.point}_seed{self.seed}"

    @property
    def overrides(self) -> list[str]:
        return [f"{key}={value}" for key, value in self.settings]

    def value(self, key: str) -> str | None:
        """The value the run gives ``key`` (``loss.name``), or None when the sweep does not set it."""
        return dict(self.settings).get(key)


@dataclass(frozen=True)
class Block:
    """A group's fixed settings, axes, cases and name template."""

    set: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, list] = field(default_factory=dict)
    cases: list[dict] = field(default_factory=list)
    name: str | None = None


@dataclass(frozen=True)
class SweepFile:
    """A parsed sweep file; :meth:`runs` expands it."""

    name: str
    path: Path
    description: str = ""
    configs: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()
    seeds: tuple[int, ...] | None = None
    seed_keys: tuple[str, ...] = DEFAULT_SEED_KEYS
    env: dict[str, str] = field(default_factory=dict)
    groups: dict[str, Block] = field(default_factory=dict)
    overview: dict | None = None
    requires: tuple[str, ...] = ()  # `requires: gpu`: checked by check_requirements before anything runs
    report: dict | None = None  # further sections of results.md: checked by experiments.report.check_report

    def runs(self) -> list[Run]:
        """Every run, group by group, each setting once per seed (seeds innermost)."""
        runs = []
        for group, block in self.groups.items():
            for point, settings in expand(block, group, self.path):
                for seed in self.seeds or (None,):
                    seeded = {**settings, **({k: str(seed) for k in self.seed_keys} if seed is not None else {})}
                    runs.append(Run(group, point, seed, tuple(seeded.items())))
        seen: dict[str, Run] = {}
        for run in runs:
            if run.name in seen:
                raise SweepFileError(f"{self.path}: two runs are named {run.name} (groups {seen[run.name].group} and "
                                     f"{run.group}). Sweep a distinguishing key as a one-value axis "
                                     "(axes: {loss.beta: [0.1]}) or give the group a name template.")
            seen[run.name] = run
        return runs


def _part(key: str, value: Any) -> str:
    if isinstance(value, dict):
        return str(value["name"]) if "name" in value else "_".join(_part(k, v) for k, v in value.items())
    return text(value) if key in BARE_KEYS else f"{key.rsplit('.', 1)[-1]}{text(value)}"


def _clean(name: str) -> str:
    return re.sub(r"[^\w.+=-]+", "-", name).strip("-") or "run"


def _assign(settings: dict, key: str, value: Any) -> dict:
    if isinstance(value, dict):  # a zipped axis value: several keys at once
        return {**settings, **{k: text(v) for k, v in value.items() if k != "name"}}
    return {**settings, key: text(value)}


def _sweep(points: list, axes: dict) -> list:
    for key, values in axes.items():
        points = [(_assign(s, key, v), [*parts, _part(key, v)]) for s, parts in points for v in values]
    return points


def _matches(when: dict, settings: dict) -> bool:
    return all(settings.get(k) in {text(v) for v in (want if isinstance(want, list) else [want])}
               for k, want in when.items())


def expand(block: Block, group: str, origin: Path | str = "sweep file") -> list[tuple[str, dict[str, str]]]:
    """``[(point name, {key: value})]`` of one group: fixed settings, the axes' product, then each case."""
    points = _sweep([({k: text(v) for k, v in block.set.items()}, [])], block.axes)
    for case in block.cases:
        points = [p for s, parts in points for p in (
            _sweep([({**s, **{k: text(v) for k, v in case["set"].items()}}, parts)], case["axes"])
            if _matches(case["when"], s) else [(s, parts)])]
    named = []
    for settings, parts in points:
        if block.name:
            def fill(match: re.Match) -> str:
                if match[1] not in settings:
                    raise SweepFileError(f"{origin}: the name template {block.name!r} of group {group} uses "
                                         f"{{{match[1]}}}, which the group does not set.")
                return settings[match[1]]
            name = re.sub(r"\{([^{}]+)\}", fill, block.name)
        else:
            name = "_".join(parts) or ("default" if group == DEFAULT_GROUP else group)
        named.append((_clean(name), settings))
    return named


def _mapping(value: Any, what: str, origin: Path) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SweepFileError(f"{origin}: {what} must be a mapping of keys, got {type(value).__name__}.")
    return value


def _block(data: dict, where: str, origin: Path) -> Block:
    unknown = set(data) - BLOCK_KEYS
    if unknown:
        raise SweepFileError(f"{origin}: unknown keys {sorted(unknown)} in {where}; a group has {sorted(BLOCK_KEYS)}.")
    axes = _mapping(data.get("axes"), f"'axes' of {where}", origin)
    cases = data.get("cases") or []
    if not isinstance(cases, list):
        raise SweepFileError(f"{origin}: 'cases' of {where} must be a list of {{when, set, axes}}.")
    checked = []
    for i, case in enumerate(cases):
        what = f"case {i + 1} of {where}"
        bad = set(_mapping(case, what, origin)) - CASE_KEYS
        if bad:
            raise SweepFileError(f"{origin}: unknown key(s) {sorted(bad)} in {what}; a case has {sorted(CASE_KEYS)}.")
        checked.append({key: _mapping(case.get(key), f"'{key}' of {what}", origin) for key in CASE_KEYS})
        _check_axes(checked[-1]["axes"], what, origin)
    _check_axes(axes, where, origin)
    return Block(_mapping(data.get("set"), f"'set' of {where}", origin), axes, checked, data.get("name"))


def _check_axes(axes: dict, where: str, origin: Path) -> None:
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise SweepFileError(f"{origin}: axis {key} of {where} must be a non-empty list of values, got {values!r}.")


def resolve_sweep_path(name: str, folder: str = "sweep") -> Path:
    """A sweep (or recipe) file: a path as given, else ``configs/<folder>/<name>.yaml``."""
    from unlearn.config.loading import configs_dir

    candidates = [Path(name), configs_dir() / folder / name, configs_dir() / folder / f"{name}.yaml",
                  configs_dir() / f"{name}.yaml"]  # also sweep/<name>, as --config takes group/name
    for path in candidates:
        if path.is_file():
            return path
    shipped = sorted(p.stem for p in (configs_dir() / folder).glob("*.yaml"))
    raise SweepFileError(f"{folder} file '{name}' not found (looked at: {', '.join(map(str, candidates))}). "
                         f"Shipped: {', '.join(shipped) or 'none'}.")


def parse_sweep(data: dict, path: Path, seeds: list[int] | None = None) -> SweepFile:
    """A :class:`SweepFile` from the mapping a sweep file holds; ``seeds`` replaces the file's."""
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise SweepFileError(f"{path}: unknown key(s) {sorted(unknown)}; a sweep file has {sorted(TOP_KEYS)}.")
    base = _mapping(data.get("base"), "'base'", path)
    if set(base) - {"configs", "overrides"}:
        raise SweepFileError(f"{path}: 'base' takes configs (a list of files) and overrides (a list of key=value).")
    groups = _mapping(data.get("groups"), "'groups'", path)
    if groups and set(data) & BLOCK_KEYS:
        raise SweepFileError(f"{path}: give either 'groups' or top-level set/axes/cases, not both.")
    blocks = ({str(g): _block(_mapping(b, f"group {g}", path), f"group {g}", path) for g, b in groups.items()}
              if groups else {DEFAULT_GROUP: _block({k: data[k] for k in BLOCK_KEYS & set(data)}, "the file", path)})
    seeds = seeds if seeds is not None else data.get("seeds")
    if seeds is not None and (not isinstance(seeds, list) or not seeds
                              or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise SweepFileError(f"{path}: seeds must be a non-empty list of integers, got {seeds!r}.")
    if seeds is not None and len(set(seeds)) != len(seeds):
        raise SweepFileError(f"{path}: seeds {seeds} repeat a seed.")
    return SweepFile(path.stem, path, str(data.get("description") or "").strip(),
                     tuple(base.get("configs") or ()), tuple(text(o) for o in base.get("overrides") or ()),
                     tuple(seeds) if seeds else None, tuple(data.get("seed_keys") or DEFAULT_SEED_KEYS),
                     {str(k): text(v) for k, v in _mapping(data.get("env"), "'env'", path).items()}, blocks,
                     data.get("overview"), requirements(data.get("requires"), path), data.get("report"))


def load_sweep(name: str, seeds: list[int] | None = None) -> SweepFile:
    """Read and check the sweep file ``name`` (a path or a name under ``configs/sweep/``)."""
    path = resolve_sweep_path(name)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SweepFileError(f"Cannot parse sweep file {path}: {err}") from err
    return parse_sweep(_mapping(data, "the file", path), path, seeds)


def select(runs: list[Run], patterns: list[str]) -> list[Run]:
    """Runs whose group, setting or name matches one of the shell-style ``patterns`` (all when none)."""
    if not patterns:
        return runs
    chosen = [r for r in runs if any(fnmatch.fnmatch(x, p) for p in patterns for x in (r.group, r.point, r.name))]
    if not chosen:
        raise SweepFileError(f"no run matches {patterns}; groups: {sorted({r.group for r in runs})}, runs such as "
                             f"{', '.join(r.name for r in itertools.islice(runs, 3))}.")
    return chosen
