"""Cache keys: short stable hashes, and what identifies a model's weights.

No torch here: the reference cache, the evaluation cache and the data caches all key on these.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

# Files whose change changes a model: weights, its configuration, and its tokenizer (JSON, a
# sentencepiece .model, or merges.txt / vocab.txt).
MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".json", ".model", ".txt")
DATA_FILES = "*.json*"  # what finetune reads of a data folder, at its top: <split>.json, idontknow.jsonl


def stable_json(obj: Any) -> str:
    """``json.dumps`` with sorted keys: equal objects give equal strings.

    Raises:
        TypeError: ``obj`` holds something JSON cannot encode (never silently turned into its ``repr``).
    """
    return json.dumps(obj, sort_keys=True)


def short_hash(payload: Any, length: int = 16) -> str:
    """The first ``length`` hex digits of the SHA-256 of ``payload``.

    ``str`` and ``bytes`` are hashed as given (UTF-8 for text); anything else is serialised with
    :func:`stable_json` first, so the order of a dict's keys does not matter.
    """
    if isinstance(payload, str):
        payload = payload.encode()
    elif not isinstance(payload, (bytes, bytearray)):
        payload = stable_json(payload).encode()
    return hashlib.sha256(payload).hexdigest()[:length]


def _hub_revision(repo_id: str, repo_type: str | None = None) -> str | None:
    """The commit of the locally cached snapshot of a hub id (a model's, or ``repo_type="dataset"``), or None (not
    cached, or not a hub id)."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, repo_type=repo_type, local_files_only=True)).name
    except Exception:  # not cached, not a valid id, no huggingface_hub: the id is all there is to go on
        return None


def model_identity(path: str | Path) -> dict:
    """What identifies a model's weights, as JSON-ready data for a cache key.

    - A local folder: its resolved path, and the relative path, size and modification time of
      every weight, configuration and tokenizer file in it or its subfolders
      (:data:`MODEL_FILE_SUFFIXES`, ``config.json`` included). Retraining it in place changes this.
    - Anything else (a hub id): the id, and the commit of the locally cached snapshot when there
      is one, so a new revision of the same id is a new identity.
    """
    folder = Path(path).expanduser()
    if folder.is_dir():
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in MODEL_FILE_SUFFIXES)
        return {"path": str(folder.resolve()),
                "files": [[p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns] for p in files]}
    return _hub_identity(str(path))


def _hub_identity(repo_id: str, repo_type: str | None = None) -> dict:
    identity = {"id": repo_id}
    revision = _hub_revision(repo_id, repo_type)
    if revision is not None:
        identity["revision"] = revision
    return identity


def tokenizer_fingerprint(tokenizer) -> str:
    """A short hash of a tokenizer's vocabulary: evaluation results are keyed by it."""
    return short_hash(stable_json(sorted(tokenizer.get_vocab().items())))


def data_identity(path: str | Path, leave_out: str | None = None) -> dict:
    """What identifies a dataset for a cache key: a local folder's files by content, else the hub id.

    A local folder gives the name and SHA-256 of every file ``finetune`` reads in it (:data:`DATA_FILES`: TOFU's
    split files and ``idontknow.jsonl``, whose text the built-in tokenizer learns), those whose name starts with
    ``leave_out`` left out; neither its place, its name nor its files' times count, nor anything else in it
    (subfolders, notes, checkpoints). A model's weights are keyed by size and time (gigabytes are slow to hash),
    but data is small, and models trained on it can take an hour on a CPU: a copy, a restore or a move of the same
    files must find them again, not train them anew. Anything else is a hub dataset: its id and the revision of its
    cached snapshot.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        return _hub_identity(str(path), "dataset")
    files = sorted(p for p in folder.glob(DATA_FILES) if p.is_file()
                   and not (leave_out and p.name.startswith(leave_out)))
    return {"files": [[p.name, _file_sha256(p)] for p in files]}


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
