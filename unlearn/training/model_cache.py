"""Where trained target and retain models are cached, and what their folders are keyed by.

Every folder is named by a hash of what its models' weights depend on: the data they learn (a local folder's
files by content, :func:`unlearn.identity.data_identity`), the starting model, the fine-tuning settings, the seed
and the machine's precision and device. A user's model fine-tuned into a folder records its key there
(``finetune.json``), so that models trained from something else are never taken for these.

Releases before 2026-12-05 keyed local data by its resolved path and its files' sizes and times. A cache folder or
a ``finetune.json`` of that key is taken over (renamed, or its record rewritten) when its files are still those
sizes and times: an upgrade does not retrain models that took an hour on a CPU or hours on GPUs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import torch

from unlearn.config.schema import Config
from unlearn.errors import RunFolderError
from unlearn.files import atomic_write_text
from unlearn.identity import data_identity, model_identity, short_hash, stable_json

log = logging.getLogger(__name__)
HOLDOUT_PREFIX = "holdout"  # TOFU's holdoutXX.json: authors no model is trained on
MANIFEST = "finetune.json"  # what the models in a fine-tuning folder were trained from (user models)


def model_cache_dir(cfg: Config, prefix: str, identity: dict) -> Path:
    """``<run.cache_dir>/models/<prefix>-<hash>``: the folder of built-in models trained from ``identity`` (the data
    they learn, in the words of each benchmark) with what every built-in model's weights depend on: the
    architecture, ``finetune.*``, ``data.max_length``, ``run.seed``, and :func:`trained_on`."""
    key = {**identity, "model": asdict(cfg.model.builtin), "finetune": asdict(cfg.finetune),
           "max_length": cfg.data.max_length, "seed": cfg.run.seed, **trained_on(cfg)}
    return Path(cfg.run.cache_dir).expanduser() / "models" / f"{prefix}-{short_hash(stable_json(key), length=12)}"


def trained_on(cfg: Config) -> dict:
    """The part of a built-in model's cache key that the machine makes: nothing on the CPU at full precision (so the
    models cached before it was keyed keep their folders), else the precision and the device. Models trained in
    ``bf16-true`` or ``bf16-mixed``, or on a GPU, have other weights: the same seed's fp32 TOFU target from scratch
    had model utility 0.453 on a CPU and 0.396 on an H200, and neither must be taken for the other."""
    precision = str(cfg.trainer.precision)
    device = training_device(cfg.trainer.accelerator)
    return {**({} if precision in ("32-true", "32") else {"precision": precision}),
            **({} if device == "cpu" else {"device": device})}


def training_device(accelerator: str) -> str:
    """The device Lightning trains on for ``trainer.accelerator``: ``cuda``, ``mps`` or ``cpu`` (``auto`` takes a
    GPU when torch sees one)."""
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "cuda"
    if accelerator in ("auto", "gpu", "mps") and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def builtin_model_dir(cfg: Config) -> Path:
    """Cache folder of the built-in models, keyed by everything that changes their weights."""
    return model_cache_dir(cfg, "builtin", {
        "data": asdict(cfg.data.builtin), "format": cfg.model.prompt_format,
        "tokenizer_texts": "with-holdout"})  # models whose tokenizer never saw the holdout stay apart


def scratch_model_dir(cfg: Config, source: Path | str) -> Path:
    """Cache folder of the models trained from scratch on a TOFU-format folder (``model.from_scratch``), keyed by
    its files' content, holdout files included (their tokenizer learns every file's text: ``benchmark_texts``), and
    everything else that changes their weights. The folder's name shows the data folder's (``scratch-tofu-<hash>``)
    but only the hash finds it: the same files under another name find the same models."""
    name = _folder_name(source) or "data"
    folder = model_cache_dir(cfg, f"scratch-{name}", {"data": data_identity(source),
                                                      "format": cfg.model.prompt_format})
    found = [folder] if folder.exists() else sorted(folder.parent.glob(f"scratch-*-{folder.name.rsplit('-', 1)[1]}"))
    if found:
        return found[0]
    legacy = _legacy_data_identity(source)
    return _take_over(folder, legacy and model_cache_dir(cfg, f"scratch-{name}", {
        "data": legacy, "format": cfg.model.prompt_format}))


def finetune_key(cfg: Config, source: Path | str, data: dict | None = None) -> dict:
    """What identifies the models fine-tuned from ``cfg.model.path``: starting model, data (``data``: this identity
    of it instead of :func:`_data_identity`'s), settings."""
    key = {"model": model_identity(cfg.model.path),
           "tokenizer": model_identity(cfg.model.tokenizer) if cfg.model.tokenizer else None,
           "data": data if data is not None else _data_identity(source),
           "finetune": asdict(cfg.finetune), "format": cfg.model.prompt_format, "max_length": cfg.data.max_length,
           "template_kwargs": cfg.model.chat_template_kwargs,
           "seed": cfg.run.seed, "dtype": cfg.model.dtype, "precision": cfg.trainer.precision}
    if cfg.model.system_prompt is not None:  # only then: models fine-tuned without one keep their folder
        key["system_prompt"] = cfg.model.system_prompt
    return key


def finetuned_model_dir(cfg: Config, source: Path | str) -> Path:
    """Cache folder of the models fine-tuned from ``cfg.model.path``; never a built-in model's folder."""
    models, name = Path(cfg.run.cache_dir).expanduser() / "models", _folder_name(cfg.model.path) or "model"
    folder = models / f"finetuned-{name}-{short_hash(finetune_key(cfg, source))}"
    if folder.exists():
        return folder
    legacy = _legacy_data_identity(source)
    return _take_over(folder, legacy and models / f"finetuned-{name}-{short_hash(finetune_key(cfg, source, legacy))}")


def claim(out_dir: Path, cfg: Config, source: Path | str, roles: list[Path]) -> None:
    """Record the models' key in ``out_dir`` (a user model's folder), or refuse models trained from something else.

    A record of the earlier key of the same, unchanged files is rewritten to this key.

    Raises:
        RunFolderError: the folder holds models without a record, or a record of another key.
    """
    manifest = out_dir / MANIFEST
    key = json.loads(json.dumps(finetune_key(cfg, source)))
    try:
        recorded = json.loads(manifest.read_text()) if manifest.is_file() else None
    except (OSError, ValueError):
        recorded = {}  # unreadable: not a record of these settings
    if recorded == key:
        return
    legacy = _legacy_data_identity(source) if recorded else None
    if (recorded is None and not any(p.exists() for p in roles)) or \
            (legacy and recorded == json.loads(json.dumps(finetune_key(cfg, source, legacy)))):
        atomic_write_text(manifest, json.dumps(key, indent=2))
    else:
        what = "models without a record of what they were trained from" if recorded is None else \
            "models trained from another model, data or settings"
        raise RunFolderError(f"{out_dir} already holds {what} ({MANIFEST}); they are neither reused nor replaced. "
                             "Choose another --out, or delete that folder.")


def _data_identity(source: Path | str) -> dict:
    """A folder's data by content, or the hub id; holdout files left out (no model trains on them, and a cached
    built-in benchmark gains them later: models fine-tuned on it keep their key)."""
    return data_identity(source, leave_out=HOLDOUT_PREFIX)


def _legacy_data_identity(source: Path | str) -> dict | None:
    """The data key of releases before 2026-12-05 for a local folder: its resolved path and its files' sizes and
    times (holdout files left out). None for a hub dataset: its earlier key, the id alone, says nothing of which
    revision the models learned, so they are not taken for the cached revision's."""
    identity = model_identity(source)
    if "files" not in identity:
        return None
    identity["files"] = [f for f in identity["files"] if not f[0].startswith(HOLDOUT_PREFIX)]
    return identity


def _take_over(folder: Path, legacy: Path | None) -> Path:
    """``folder`` (which does not exist yet); when ``legacy`` (the folder of the earlier key of the same, unchanged
    files) does, that folder renamed to it first."""
    if legacy is None or not legacy.is_dir():
        return folder
    try:
        legacy.rename(folder)
        log.info("Models cached under an earlier key of the same files: %s is now %s", legacy.name, folder.name)
    except OSError as error:  # another run took it over first, or the cache is read-only: use what is there
        log.warning("Could not rename %s to %s (%s)", legacy, folder, error)
        return folder if folder.exists() else legacy
    return folder


def _folder_name(path: Path | str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in Path(str(path).rstrip("/")).name)
