"""A benchmark's splits written to disk, atomically: TOFU's layout (``<split>.json`` as JSON Lines) and
MUSE's (``<config>/<split>.json``, see :mod:`unlearn.data.muse`)."""

from __future__ import annotations

import json
from pathlib import Path

from unlearn.errors import RunFolderError
from unlearn.files import atomic_folder, atomic_write


def _render(splits: dict[str, list]) -> dict[str, bytes]:
    """File name -> contents: ``<split>.json`` as JSON Lines, ``idontknow.jsonl`` as plain lines."""
    files = {}
    for name, rows in splits.items():
        if not name or Path(name).name != name or name.startswith("."):
            raise ValueError(f"Split name {name!r} is not a plain file name.")
        if name == "idontknow":
            if any(not isinstance(s, str) or "\n" in s for s in rows):
                raise ValueError("idontknow must be a list of one-line strings.")
            files["idontknow.jsonl"] = "".join(f"{sentence}\n" for sentence in rows).encode()
        else:
            files[f"{name}.json"] = jsonl_bytes(rows)
    return files


def jsonl_bytes(rows: list) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()


def _holds(folder: Path, files: dict[str, bytes]) -> bool:
    """Whether ``folder`` holds exactly ``files`` (relative paths; subfolders hold no other files)."""
    present = {path.relative_to(folder).as_posix(): path for path in folder.rglob("*") if path.is_file()}
    return present.keys() == files.keys() and all(present[name].read_bytes() == data for name, data in files.items())


def write_benchmark(out_dir: str | Path, splits: dict[str, list]) -> Path:
    """Writes the splits in TOFU's layout, atomically.

    Args:
        out_dir: Folder to create; its parents are created too. It may exist if it is empty or
            already holds exactly this benchmark (then nothing is written).
        splits: As returned by :func:`generate_benchmark`.

    Returns:
        ``out_dir`` as a Path.

    Raises:
        RunFolderError: ``out_dir`` is a file, or a non-empty folder holding something else.
    """
    return write_files(Path(out_dir), _render(splits))


def write_muse_benchmark(out_dir: str | Path, sets: dict[str, dict[str, list]]) -> Path:
    """Writes a MUSE-format benchmark, ``{config: {split: rows}}``, as ``<config>/<split>.json`` JSON Lines, atomically.

    Raises:
        ValueError: a config or split name that is not a plain file name.
        RunFolderError: as :func:`write_benchmark`.
    """
    files = {}
    for config, splits in sets.items():
        for split, rows in splits.items():
            for name in (config, split):
                if not name or Path(name).name != name or name.startswith("."):
                    raise ValueError(f"Config or split name {name!r} is not a plain file name.")
            files[f"{config}/{split}.json"] = jsonl_bytes(rows)
    return write_files(Path(out_dir), files)


def add_missing_splits(folder: str | Path, splits: dict[str, list]) -> list[str]:
    """Writes each split of ``splits`` that ``folder`` (a TOFU-layout benchmark) lacks, each file atomically.

    A benchmark cached before a release that added splits (the holdout ones) gains them; files already
    there are never rewritten. Two processes adding the same split write the same bytes.

    Returns:
        The names of the files written.
    """
    written = []
    for name, data in _render(splits).items():
        path = Path(folder) / name
        if not path.is_file():
            atomic_write(path, data)
            written.append(name)
    return written


def write_files(out: Path, files: dict[str, bytes]) -> Path:
    """Write ``files`` (relative path -> bytes) as the folder ``out``, atomically; a folder already holding exactly
    them is kept, any other non-empty folder refused (RunFolderError)."""
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"{out} exists and is not a folder; choose another benchmark folder.")
    if out.is_dir() and any(out.iterdir()):
        if _holds(out, files):
            return out
        raise RunFolderError(f"{out} is not empty and does not hold this benchmark; refusing to overwrite it. "
                              "Choose a new folder, or delete this one if it is a stale benchmark.")
    if out.is_dir():
        out.rmdir()  # empty; renaming onto an existing folder is not portable
    # Written next to the target, then renamed (unlearn.files.atomic_folder): a crash leaves a
    # hidden temporary folder, never a half-written benchmark under the real name.
    try:
        with atomic_folder(out) as tmp:
            tmp.mkdir()
            for name, data in files.items():
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                (tmp / name).write_bytes(data)
    except FileExistsError:
        # Another process may have written the same benchmark in the meantime.
        if out.is_dir() and _holds(out, files):
            return out
        raise
    return out
