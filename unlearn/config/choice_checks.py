"""Checks of the multiple-choice sources (``data.source=wmdp`` and ``hazard_builtin``) and their ``eval.*`` keys.

Kept beside ``validation.py`` (which calls :func:`check_multiple_choice` once per load) so that each stays
short; every message names the key, the value given and what to pass instead.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict

from unlearn.errors import ConfigError

CHOICE_SOURCES = ("wmdp", "hazard_builtin")  # data.source values evaluated by multiple-choice accuracy
HAZARD_SPLITS = ("hazard", "general")  # the stand-in's forget and general sets (unlearn/data/hazard_synthetic.py)


def check_multiple_choice(cfg) -> None:
    """``eval.choice_style``, ``eval.lm_eval_tasks`` and the multiple-choice sources' data keys.

    Raises:
        ConfigError: an unknown style, lm-eval tasks without lm-eval installed, a hazard stand-in given a
            ``data.path``, other splits or an impossible size, or ``data.source=wmdp`` without ``data.path``.
    """
    from unlearn.data.wmdp import STYLES

    d, e = cfg.data, cfg.eval
    if e.choice_style not in STYLES:
        raise ConfigError(f"eval.choice_style={e.choice_style!r} is not a multiple-choice style; choose one of: "
                          f"{', '.join(STYLES)} (letters: WMDP's lm-eval prompt, the answer's letter scored; cloze: "
                          "the choices' own texts scored, what the built-in tiny model can learn).")
    tasks = list(e.lm_eval_tasks)
    if tasks:
        if not all(isinstance(t, str) and t.strip() for t in tasks):
            raise ConfigError(f"eval.lm_eval_tasks={tasks} must list lm-eval task names, e.g. [wmdp_bio,mmlu].")
        if importlib.util.find_spec("lm_eval") is None:  # checked, not imported: loading a config stays light
            from unlearn.evaluation.lm_eval_bridge import INSTALL_HINT

            raise ConfigError(f"eval.lm_eval_tasks={tasks}: {INSTALL_HINT} Or drop eval.lm_eval_tasks.")
    if d.source == "hazard_builtin":
        _check_hazard(d)
    elif d.source == "wmdp" and not d.path:
        raise ConfigError("data.source=wmdp needs data.path: a hub id (cais/wmdp, with data.forget_split=wmdp-bio, "
                          "wmdp-cyber or wmdp-chem) or a local folder of <config>.json files (unlearn/data/wmdp.py). "
                          "Offline, use the stand-in: data=hazard_builtin.")


def _check_hazard(d) -> None:
    from unlearn.data.hazard_synthetic import HazardSpec, validate_spec

    if d.path is not None:
        raise ConfigError(f"data.path={d.path} is not read by data.source=hazard_builtin, which generates its own "
                          "benchmark (data.hazard_builtin.*). For WMDP's own files use data.source=wmdp.")
    if d.forget_split != HAZARD_SPLITS[0] or d.retain_split not in (None, HAZARD_SPLITS[1]):
        raise ConfigError(f"data.forget_split={d.forget_split!r} and data.retain_split={d.retain_split!r}: the "
                          "hazard stand-in forgets its hazardous corpus and keeps its general one; leave them at "
                          f"{HAZARD_SPLITS[0]} and {HAZARD_SPLITS[1]} (configs/data/hazard_builtin.yaml).")
    for role in ("forget", "retain"):
        if getattr(d, f"{role}_format") != "text":
            raise ConfigError(f"data.{role}_format={getattr(d, f'{role}_format')!r}, but the hazard stand-in's {role} "
                              f"set is raw text: set data.{role}_format=text (configs/data/hazard_builtin.yaml does).")
    try:
        validate_spec(HazardSpec(**asdict(d.hazard_builtin)))
    except ValueError as err:
        raise ConfigError(f"data.hazard_builtin: {err}") from err
