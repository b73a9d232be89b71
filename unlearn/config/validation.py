"""Range, choice and consistency checks on a loaded configuration.

OmegaConf already enforces each key's type; this module checks what types cannot say (a positive
learning rate, a known prompt format, options that exclude each other) once, right after the
config is loaded, so a bad value fails in a second instead of hours into a run. Every message
names the key, the value given and what to change.

Components are looked up by name in the project's own tables (losses, prompt formats, dtypes,
precisions); no config value is ever imported or evaluated as code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from unlearn.config.choice_checks import check_multiple_choice
from unlearn.config.schema import Config

from unlearn.errors import ConfigError
from unlearn.names import MIA_ATTACKS, SELECTION_RULES, TOFU_HUB_ID, is_tofu_log

DATA_SOURCES = ("builtin", "tofu", "files", "muse", "muse_builtin", "wmdp", "hazard_builtin")
# Lightning's accepted strings (its `_PRECISION_INPUT`), spelled out so a typo fails at load time.
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true", "32", "16", "bf16", "64",
              "transformer-engine", "transformer-engine-float16")
MIN_MAX_LENGTH = 8  # room for a prompt template, one answer token and EOS


def _positive(x) -> bool:
    return x is not None and math.isfinite(x) and x > 0


def _non_negative(x) -> bool:
    return x is not None and math.isfinite(x) and x >= 0


def _at_least(n: int) -> Callable[[Any], bool]:
    return lambda x: x is not None and x >= n


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda x: x is None or check(x)


# key, check, what the value must be, how to fix it
RANGES: list[tuple[str, Callable[[Any], bool], str, str]] = [
    ("optim.lr", _positive, "> 0", "the NPO paper uses 1e-5 for 7B models"),
    ("optim.weight_decay", _non_negative, ">= 0", "0.01 is the paper's value"),
    ("optim.warmup_epochs", _non_negative, ">= 0", "use 0 for no warm-up"),
    ("optim.accumulate_grad_batches", _at_least(1), ">= 1", "1 means no accumulation"),
    ("optim.gradient_clip_val", _optional(_positive), "> 0 or null", "use null for no clipping"),
    ("data.batch_size", _at_least(1), ">= 1", "lower it to fit memory, raise optim.accumulate_grad_batches instead"),
    ("data.num_workers", _at_least(0), ">= 0", "0 loads data in the main process"),
    ("data.max_length", _at_least(MIN_MAX_LENGTH), f">= {MIN_MAX_LENGTH}", "TOFU runs use 500"),
    ("trainer.max_epochs", _at_least(1), ">= 1", "the NPO paper trains 10 epochs on TOFU"),
    ("trainer.num_nodes", _at_least(1), ">= 1", "1 for a single machine"),
    ("trainer.log_every_n_steps", _at_least(1), ">= 1", "1 logs every optimiser step"),
    ("trainer.collective_timeout_s", _at_least(1), ">= 1", "it must outlast the longest step, evaluation or save; "
     "the default is 1800 (30 minutes)"),
    ("finetune.epochs", _at_least(1), ">= 1", "TOFU fine-tunes for 5 epochs"),
    ("finetune.lr", _positive, "> 0", "TOFU uses 1e-5"),
    ("finetune.batch_size", _at_least(1), ">= 1", "lower it to fit memory"),
    ("finetune.weight_decay", _non_negative, ">= 0", "0.01 is TOFU's value"),
    ("finetune.warmup_epochs", _non_negative, ">= 0", "use 0 for no warm-up"),
    ("run.checkpoint_every_n_steps", _optional(_at_least(1)), ">= 1 or null",
     "null checkpoints at the end of every epoch only"),
    # loss.* values are checked by the strategy itself (unlearn/losses), which validate() builds.
]


def _get(cfg: Config, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not a valid choice; choose one of: {', '.join(choices)}.")


def _check_ranges(cfg: Config) -> None:
    for key, check, requirement, hint in RANGES:
        value = _get(cfg, key)
        try:
            ok = check(value)
        except TypeError:  # e.g. a string where OmegaConf allowed Any
            ok = False
        if not ok:
            raise ConfigError(f"{key} must be {requirement}, got {value!r} ({hint}).")


def _check_choices(cfg: Config) -> None:
    from unlearn.data.formatting import PROMPT_FORMATS
    from unlearn.models.loading import DTYPES

    _choice("data.source", cfg.data.source, DATA_SOURCES)
    _choice("data.forget_format", cfg.data.forget_format, ("qa", "text"))
    _choice("data.retain_format", cfg.data.retain_format, ("qa", "text"))
    _choice("model.prompt_format", cfg.model.prompt_format, PROMPT_FORMATS)
    _choice("model.dtype", cfg.model.dtype, tuple(DTYPES))
    _choice("trainer.precision", str(cfg.trainer.precision), PRECISIONS)


def _check_consistency(cfg: Config) -> None:
    for section, epochs_key in (("optim", "trainer.max_epochs"), ("finetune", "finetune.epochs")):
        warmup, epochs = _get(cfg, f"{section}.warmup_epochs"), _get(cfg, epochs_key)
        if warmup > epochs:
            raise ConfigError(
                f"{section}.warmup_epochs={warmup} is more than {epochs_key}={epochs}: the learning rate would "
                f"never reach its set value. Set {section}.warmup_epochs={epochs:g} or lower, or raise {epochs_key}.")
    if cfg.run.resume and cfg.run.overwrite:
        raise ConfigError("run.resume=true and run.overwrite=true exclude each other: resuming continues the run "
                          "in its folder, overwriting deletes it. Pass only one of them.")
    if cfg.run.resume and not cfg.run.name:
        raise ConfigError("run.resume=true needs run.name=<the folder name of the run to continue> "
                          f"(a folder under run.output_dir={cfg.run.output_dir}).")
    if cfg.run.name is not None and (not cfg.run.name.strip() or re.search(r"[/\\]|^\.\.?$", cfg.run.name)):
        raise ConfigError(f"run.name={cfg.run.name!r} must be a plain folder name (no '/', not '.' or '..'); "
                          "put the parent folder in run.output_dir.")
    if cfg.model.system_prompt is not None and cfg.model.prompt_format != "chat_template":
        raise ConfigError(f"model.system_prompt needs model.prompt_format=chat_template (a system turn in the "
                          f"tokenizer's template); prompt_format={cfg.model.prompt_format} has none. Drop one of them.")
    if is_tofu_log(cfg.model.retain_path) and cfg.data.source not in ("tofu", "builtin"):
        raise ConfigError(f"model.retain_path={cfg.model.retain_path} is a TOFU evaluation log, which only TOFU-format "
                          f"benchmarks read (data.source=tofu or builtin), not data.source={cfg.data.source}. Give the "
                          "retain model's folder or hub id instead.")
    if cfg.model.from_scratch and (cfg.model.path is not None or cfg.data.source != "tofu"):
        raise ConfigError(f"model.from_scratch=true trains the built-in architecture on TOFU-format files "
                          f"(data.source=tofu, data.path=<folder>) and needs no model.path; got "
                          f"data.source={cfg.data.source}, model.path={cfg.model.path}. Drop one of them.")
    retain = cfg.data.retain_split
    # MUSE's retain split defaults to retain1; the multiple-choice sources name configs, not TOFU's splits.
    tofu_names = cfg.data.source not in ("muse", "muse_builtin", "wmdp", "hazard_builtin")
    if retain is None and tofu_names and not re.fullmatch(r"forget\d\d", cfg.data.forget_split):
        raise ConfigError(f"data.forget_split={cfg.data.forget_split!r} does not follow TOFU's forgetNN naming, so "
                          "its retain split cannot be derived: name it with data.retain_split=...")
    if retain is not None and retain == cfg.data.forget_split:
        raise ConfigError(f"data.retain_split and data.forget_split are both {retain!r}: the retain set must be "
                          "data the model keeps, not the data it forgets.")


TOFU_FORGET_SPLITS = ("forget01", "forget05", "forget10")


def _check_forget_split(cfg: Config) -> None:
    """A forgetNN split exists in the built-in benchmark (data.builtin.forget_percents) or on TOFU's hub.

    Checked before anything loads: otherwise the missing split shows up late, as its retain split
    (``forget07`` -> "Split 'retain93' not found"). A local TOFU folder is checked when it is read.
    """
    d = cfg.data
    if not re.fullmatch(r"forget\d+", d.forget_split):
        return
    if d.source == "builtin":
        available = [f"forget{int(p):02d}" for p in d.builtin.forget_percents]
        where = ("the built-in benchmark", "or add its percent to data.builtin.forget_percents (e.g. "
                 f"data.builtin.forget_percents=[{','.join(str(p) for p in d.builtin.forget_percents)},"
                 f"{int(d.forget_split[6:])}])")
    elif d.source == "tofu" and (d.path or TOFU_HUB_ID) == TOFU_HUB_ID:
        available, where = list(TOFU_FORGET_SPLITS), (f"TOFU ({TOFU_HUB_ID})", "")
    else:
        return
    if d.forget_split not in available:
        raise ConfigError(f"data.forget_split={d.forget_split!r} is not a forget split of {where[0]}; its forget "
                          f"splits are {', '.join(available)}. Choose one of them{' ' + where[1] if where[1] else ''}.")


def _check_muse(cfg: Config) -> None:
    """MUSE's sources (``data.source=muse`` / ``muse_builtin``): raw text, MUSE's raw splits, a path for real MUSE."""
    from unlearn.data.muse import MUSE_HUB_IDS, MUSE_SOURCES, RAW_SPLITS, retain_split_or_default

    d = cfg.data
    if d.source not in MUSE_SOURCES:
        return
    for role in ("forget", "retain"):
        if getattr(d, f"{role}_format") != "text":
            raise ConfigError(f"data.{role}_format={getattr(d, f'{role}_format')!r}, but MUSE's {role} set is raw "
                              f"news text: set data.{role}_format=text (configs/data/{d.source}.yaml does).")
    if d.source == "muse_builtin" and d.path is not None:
        raise ConfigError(f"data.path={d.path} is not read by data.source=muse_builtin, which generates its own "
                          "benchmark (data.muse_builtin.*). For MUSE's own files use data.source=muse.")
    if d.source == "muse" and not d.path:
        raise ConfigError(f"data.source=muse needs data.path: {' or '.join(MUSE_HUB_IDS)}, or a local folder of "
                          "MUSE's files (<folder>/raw/forget.json, ...). Offline, use the stand-in: data=muse_builtin.")
    retain = retain_split_or_default(d.retain_split)
    if "holdout" in (d.forget_split, retain):
        raise ConfigError("MUSE's holdout articles are PrivLeak's non-members, which no model may train on: choose "
                          "other splits for data.forget_split and data.retain_split (MUSE: forget and retain1).")
    if d.forget_split == retain:
        raise ConfigError(f"data.forget_split and data.retain_split are both {retain!r}: the retain set must be "
                          "data the model keeps (MUSE: retain1).")
    if d.source == "muse_builtin" or d.path in MUSE_HUB_IDS:
        for key, value in (("forget_split", d.forget_split), ("retain_split", retain)):
            if value not in RAW_SPLITS:
                raise ConfigError(f"data.{key}={value!r} is not a split of MUSE's raw config "
                                  f"({', '.join(RAW_SPLITS)}); MUSE unlearns forget with retain1.")
    if d.source == "muse_builtin":
        m = d.muse_builtin
        low = [f"data.muse_builtin.{name} must be >= {n}, got {getattr(m, name)}" for name, n in (
            ("forget_articles", 1), ("retain1_articles", 1), ("retain2_articles", 1), ("holdout_articles", 1),
            ("questions_per_article", 1), ("icl_examples", 0)) if getattr(m, name) < n]
        if low:
            raise ConfigError("; ".join(low) + ".")


def _check_eval(cfg: Config) -> None:
    e = cfg.eval
    problems = [f"eval.{name} must be >= {low}, got {value}" for name, value, low in (
        ("every_n_epochs", e.every_n_epochs, 1), ("max_new_tokens", e.max_new_tokens, 1),
        ("batch_size", e.batch_size, 1), ("num_logged_samples", e.num_logged_samples, 0),
        ("max_rows", 1 if e.max_rows is None else e.max_rows, 1)) if value < low]
    if not 0 <= e.collapse_fraction <= 1:
        problems.append(f"eval.collapse_fraction must be between 0 and 1, got {e.collapse_fraction}")
    if e.selection not in SELECTION_RULES:
        problems.append(f"eval.selection must be one of {', '.join(SELECTION_RULES)}, got '{e.selection}'")
    unknown = [a for a in e.mia_attacks if a not in MIA_ATTACKS]
    if unknown:
        problems.append(f"eval.mia_attacks has unknown attacks {unknown}; choose from {list(MIA_ATTACKS)} "
                        "(eval.mia_attacks=[] turns membership inference off)")
    if not 0 < e.mia_k <= 1:
        problems.append(f"eval.mia_k must be in (0, 1], got {e.mia_k}")
    if problems:
        raise ConfigError("; ".join(problems))


def _check_loss(cfg: Config) -> None:
    # The loss table is the only way a config names code: an unknown name (even a dotted path such
    # as `os.system`) is rejected with the list of valid strategies.
    from unlearn.losses import build_loss_from_config

    build_loss_from_config(cfg.loss, max_length=cfg.data.max_length)


def _check_attack(cfg: Config) -> None:
    """``attack.*`` (``python -m unlearn attack``, docs/robustness.md): known attacks and settings in range."""
    from unlearn.config.schema import ATTACK_NAMES

    a, r, q = cfg.attack, cfg.attack.relearn, cfg.attack.quantize
    problems = []
    if a.name not in (*ATTACK_NAMES, "all"):
        problems.append(f"attack.name must be one of {', '.join(ATTACK_NAMES)}, all; got '{a.name}'")
    if a.names is not None:
        unknown = [n for n in a.names if n not in ATTACK_NAMES]
        if unknown or not a.names or len(set(a.names)) != len(a.names):
            problems.append(f"attack.names must list distinct attacks from {list(ATTACK_NAMES)}, got {list(a.names)}")
        if a.name != "all":
            problems.append(f"attack.name={a.name} and attack.names={list(a.names)} both choose attacks; set only one")
    for key, value, ok, requirement in (
            ("relearn.fraction", r.fraction, 0 < r.fraction < 1, "between 0 and 1 (exclusive)"),
            ("relearn.unit", r.unit, r.unit in ("author", "question"), "author or question"),
            ("relearn.author_rows", r.author_rows, r.author_rows is None or r.author_rows >= 1, ">= 1 or null"),
            ("relearn.steps", r.steps, r.steps >= 1, ">= 1"),
            ("relearn.lr", r.lr, r.lr is None or (math.isfinite(r.lr) and r.lr > 0), "> 0 or null (optim.lr)"),
            ("relearn.batch_size", r.batch_size, r.batch_size >= 1, ">= 1"),
            ("relearn.warmup", r.warmup, 0 <= r.warmup <= 1, "between 0 and 1 (a fraction of the steps)"),
            ("relearn.data_format", r.data_format, r.data_format in ("qa", "text"), "qa or text"),
            ("quantize.bits", q.bits, 2 <= q.bits <= 8, "between 2 and 8"),
            ("quantize.group_size", q.group_size, q.group_size >= 0, ">= 0 (0: one scale per row)")):
        if not ok:
            problems.append(f"attack.{key} must be {requirement}, got {value!r}")
    if problems:
        raise ConfigError("; ".join(problems) + ".")


def validate(cfg: Config) -> Config:
    """Check value ranges, choices and options that exclude each other.

    Args:
        cfg: A fully merged configuration.

    Returns:
        ``cfg`` unchanged, so the call can wrap a load.

    Raises:
        ConfigError: the first problem found, naming the key, the value and the fix.
    """
    _check_ranges(cfg)
    _check_choices(cfg)
    _check_consistency(cfg)
    _check_forget_split(cfg)
    _check_muse(cfg)
    check_multiple_choice(cfg)
    _check_eval(cfg)
    _check_attack(cfg)
    _check_loss(cfg)
    return cfg
