"""Stored evaluation results of retain models, so forget quality needs each retain model run once.

A result is keyed by everything that could change it: the model's path and a fingerprint of its
weight files (names, sizes, modification times), the tokenizer's vocabulary, the benchmark rows,
and the evaluation settings (prompt format, lengths). Retraining a model in place changes the
fingerprint, so a stale result is never reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from unlearn.evaluation.results import EvalResult

log = logging.getLogger(__name__)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".json")


def weights_fingerprint(model_path: str | Path) -> str:
    """A local folder: names, sizes and modification times of its weight and config files.

    A hub id: the commit of the locally cached snapshot when there is one, else the id itself.
    """
    folder = Path(model_path).expanduser()
    if folder.is_dir():
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
        return json.dumps([(str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files])
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(model_path), local_files_only=True)).name
    except Exception:  # not cached locally, or not a hub id: the id is all there is to go on
        return str(model_path)


def tokenizer_fingerprint(tokenizer) -> str:
    vocab = sorted(tokenizer.get_vocab().items())
    return hashlib.sha256(json.dumps(vocab).encode()).hexdigest()[:16]


def result_path(cache_dir: str | Path, model_path: str | Path, settings: dict) -> Path:
    """Where the result of ``model_path`` under evaluation ``settings`` is stored."""
    resolved = Path(model_path).expanduser()
    name = str(resolved.resolve()) if resolved.exists() else str(model_path)
    key = json.dumps({"model": name, "weights": weights_fingerprint(model_path), "settings": settings}, sort_keys=True)
    return Path(cache_dir).expanduser() / "eval" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def load_result(path: Path) -> EvalResult | None:
    """The stored result, or None when there is none (or it cannot be read, e.g. an older format)."""
    if not path.is_file():
        return None
    try:
        return EvalResult.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as err:
        log.warning("Ignoring unreadable cached evaluation %s (%s); evaluating again.", path, err)
        return None


def store_result(path: Path, result: EvalResult) -> None:
    """Write atomically: concurrent ranks or runs never read a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")
    tmp.write_text(json.dumps(result.to_dict()))
    tmp.replace(path)
