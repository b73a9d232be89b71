"""Stored evaluation results of retain models, so forget quality needs each retain model run once.

A result is keyed by everything that could change it: the model's identity
(:func:`unlearn.identity.model_identity`: its path and the names, sizes and modification times of
its weight and config files, or a hub id's cached revision), the tokenizer's vocabulary, the
benchmark rows, the evaluation settings (prompt format, lengths) and the exact token ids evaluated
(``TofuEvaluator.settings``: the rendered prompts, so a chat template's date, and every scored
question/answer sequence with its labels). Retraining a model in place changes the identity, and
changing how prompts are rendered or tokenised changes the key, so a stale result is never reused.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from unlearn.files import atomic_write_text
from unlearn.identity import model_identity, short_hash, stable_json

log = logging.getLogger(__name__)


def result_path(cache_dir: str | Path, model_path: str | Path, settings: dict) -> Path:
    """Where the result of ``model_path`` under evaluation ``settings`` is stored.

    Keyed by :func:`unlearn.identity.model_identity` (the same identity as the reference cache).
    """
    key = short_hash(stable_json({"model": model_identity(model_path), "settings": settings}))
    return Path(cache_dir).expanduser() / "eval" / f"{key}.json"


def load_result(path: Path):
    """The stored result (of its benchmark's result class), or None when there is none or it cannot be read
    (e.g. an older format)."""
    from unlearn.evaluation.benchmarks import result_type

    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return result_type(data.get("benchmark", "tofu")).from_dict(data)
    except (ValueError, KeyError, TypeError) as err:
        log.warning("Ignoring unreadable cached evaluation %s (%s); evaluating again.", path, err)
        return None


def store_result(path: Path, result) -> None:
    """Write atomically: concurrent ranks or runs never read a half-written file."""
    atomic_write_text(path, json.dumps(result.to_dict()))
