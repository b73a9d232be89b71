"""Reading benchmark splits in TOFU's layout: a local folder, the Hugging Face hub, or the built-in benchmark.

TOFU's files are JSON Lines despite their ``.json`` extension; the same reader serves the real
files (``locuslab/TOFU``) and the generated fictitious-authors benchmark, which is written in
the same layout.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict
from pathlib import Path

from unlearn.data.textfiles import looks_like_path, missing_path_message, parse_json_rows, read_text
from unlearn.errors import DataError
from unlearn.identity import short_hash, stable_json

QA_FIELDS = ("question", "answer")
PERTURBED_FIELDS = ("question", "answer", "paraphrased_answer", "perturbed_answer")
GENERAL_PERTURBED_FIELDS = ("question", "answer", "perturbed_answer")

log = logging.getLogger(__name__)


def retain_split_for(forget_split: str) -> str:
    """TOFU's retain split for a forget split: ``forget10`` -> ``retain90``."""
    match = re.fullmatch(r"forget(\d\d)", forget_split)
    if not match:
        raise DataError(f"Cannot derive the retain split of '{forget_split}': name it with data.retain_split=...")
    return f"retain{100 - int(match.group(1)):02d}"


def is_local(source: str | Path) -> bool:
    return Path(source).expanduser().exists()


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSON Lines file (TOFU's ``.json``); a plain JSON array is accepted too.

    Raises:
        DataError: the file is not UTF-8 (naming the byte) or a line is not JSON (naming the line).
    """
    return parse_json_rows(path)


def load_split(source: str | Path, split: str, fields: tuple[str, ...] = QA_FIELDS) -> list[dict]:
    """One split, by TOFU file stem (``forget10_perturbed``), from a folder or a hub dataset id.

    Raises:
        DataError: the split is missing or empty, or a row lacks one of ``fields``.
    """
    if is_local(source):
        folder = Path(source).expanduser()
        path = folder / f"{split}.json"
        if not path.is_file():
            raise DataError(f"Split '{split}' not found: no file {path}. {_available(folder, split)}")
        rows = read_jsonl(path)
        origin = str(path)
    elif looks_like_path(source):
        raise DataError(missing_path_message("data.path", source, "folder"))
    else:
        rows = _load_from_hub(str(source), split)
        origin = f"{source} (config '{split}')"
    validate_rows(rows, fields, origin)
    return rows


def _available(folder: Path, split: str) -> str:
    """The splits of ``folder`` of the kind ``split`` names (forget splits for ``forget07``), else all of them."""
    stems = sorted(p.stem for p in folder.glob("*.json"))
    kind = re.match(r"(forget|retain)\d", split)
    same = [s for s in stems if kind and re.fullmatch(kind.group(1) + r"\d+", s)]
    if same:
        return f"Available {kind.group(1)} splits: {', '.join(same)}."
    return f"Available splits: {', '.join(stems) or 'none'}."


def _load_from_hub(repo_id: str, split: str) -> list[dict]:
    import datasets

    try:
        dataset = datasets.load_dataset(repo_id, split, split="train")
    except Exception as err:  # the hub client raises many types: offline, unknown repo, unknown config
        raise DataError(
            f"Cannot load '{repo_id}' config '{split}' from the Hugging Face hub ({type(err).__name__}: {err}). "
            "Check the dataset id and your connection, or point data.path at a local folder of the files."
        ) from err
    return [dict(row) for row in dataset]


def validate_rows(rows: list[dict], fields: tuple[str, ...], origin: str) -> None:
    """Every row is a mapping holding each of ``fields`` as non-empty text (or a list of them).

    Raises:
        DataError: naming the file, the row number (from 0) and the field, and what to fix.
    """
    if not rows:
        raise DataError(f"{origin} has no rows: an unlearning run needs at least one example.")
    for number, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(f"{origin}, row {number}: expected an object with fields {list(fields)}, "
                            f"got {type(row).__name__}.")
        missing = [name for name in fields if name not in row]
        if missing:
            raise DataError(f"{origin}, row {number}: missing field(s) {missing}; the row has {sorted(row)}.")
        for name in fields:
            value = row[name]
            texts = value if isinstance(value, list) else [value]
            if not all(isinstance(t, str) for t in texts):
                raise DataError(f"{origin}, row {number}: field '{name}' must be text, got {value!r}.")
            if not texts or not all(t.strip() for t in texts):
                raise DataError(f"{origin}, row {number}: field '{name}' is empty; every example needs a question "
                                "and an answer to learn or forget. Fill it in or remove the row.")


def forget_retain_overlap(forget_rows: list[dict], retain_rows: list[dict],
                          names: str = "data.forget_split and data.retain_split") -> int:
    """How many forget rows also appear in the retain set (same question and answer, whitespace aside).

    Such a row is pushed down by the forget term and up by the retain term at once. ``names`` says
    which settings chose the two sets, for the message.

    Raises:
        DataError: every forget row is in the retain set, which leaves nothing to forget; this is
            usually a swapped or mistyped split name.
    """
    def key(row: dict) -> tuple[str, str]:
        return " ".join(row["question"].split()), " ".join(row["answer"].split())

    retained = {key(r) for r in retain_rows}
    shared = sum(key(r) in retained for r in forget_rows)
    if forget_rows and shared == len(forget_rows):
        raise DataError(f"All {shared} forget rows also appear in the retain set (same question and answer): "
                        f"the model would be trained to forget and to keep the same data. Check {names}.")
    return shared


def load_idk_answers(source: str | Path | None, idk_path: str | Path | None = None) -> list[str]:
    """Refusal answers for the IDK and DPO strategies: one sentence a line (TOFU's ``idontknow.jsonl``).

    ``idk_path`` when given; else ``idontknow.jsonl`` in a local ``source`` folder; else the built-in
    benchmark's list, with a warning when ``source`` is real data (the hub's ``locuslab/TOFU`` does not
    carry TOFU's list, which lives in TOFU's code repository).

    Raises:
        DataError: ``idk_path`` missing or empty.
    """
    if idk_path is not None:
        path = Path(idk_path).expanduser()
        if not path.is_file():
            raise DataError(f"data.idk_path={idk_path}: no such file. Give a text file with one refusal answer a "
                            "line (TOFU's data/idontknow.jsonl), or leave data.idk_path unset.")
        answers = _lines(path)
        if not answers:
            raise DataError(f"data.idk_path={idk_path} holds no answers: it needs one refusal answer a line.")
        return answers
    if source is not None and is_local(source):
        path = Path(source).expanduser() / "idontknow.jsonl"
        if path.is_file() and _lines(path):
            return _lines(path)
    from unlearn.data.synthetic import generate_benchmark

    answers = generate_benchmark()["idontknow"]
    if source is not None:
        log.warning("No refusal answers found for %s: the IDK/DPO target answers are the built-in benchmark's %d. "
                    "For TOFU's own 100, set data.idk_path to TOFU's data/idontknow.jsonl.", source, len(answers))
    return answers


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in read_text(path).splitlines() if line.strip()]


def holdout_split_for(forget_split: str) -> str | None:
    """TOFU's holdout split for a forget split (``forget10`` -> ``holdout10``); None for other names."""
    match = re.fullmatch(r"forget(\d\d)", forget_split)
    return f"holdout{match.group(1)}" if match else None


def load_holdout(source: str | Path | None, forget_split: str) -> list[dict] | None:
    """Question/answer rows of the authors no model saw, matching ``forget_split`` (TOFU's ``holdoutXX``).

    Membership-inference metrics set the forget rows against these. A local folder holds them as
    ``holdoutXX.json`` (the built-in benchmark does; the local copy of TOFU in ``../shared/data/tofu``
    does not); on the hub, ``locuslab/TOFU`` has the configs ``holdout01/05/10``.

    Returns:
        The rows, or None when the source has no such split: no source, a forget split not named
        ``forgetXX``, a folder without the file, or a hub dataset without the config (logged).

    Raises:
        DataError: the holdout file exists but is broken (not JSON, empty, a missing field).
    """
    split = holdout_split_for(forget_split)
    if source is None or split is None:
        return None
    if is_local(source):
        if not (Path(source).expanduser() / f"{split}.json").is_file():
            return None
        return load_split(source, split)
    if looks_like_path(source):
        return None
    try:
        return load_split(source, split)
    except DataError as err:  # offline, or a TOFU-format dataset without holdout authors
        log.warning("No holdout split '%s' from %s: %s", split, source, err)
        return None


def builtin_benchmark_dir(cache_dir: str | Path, spec) -> Path:
    """The cached folder of the generated benchmark for ``spec``, written on first use.

    The holdout splits (:func:`~unlearn.data.synthetic.generate_holdout`) came in a later release:
    a folder cached before it keeps its name and files, and gains the holdout files. A spec whose
    pools have no room for holdout authors gets none (logged), as before.
    """
    from unlearn.data.benchmark_files import add_missing_splits, write_benchmark
    from unlearn.data.synthetic import generate_benchmark, generate_holdout

    key = short_hash(stable_json(asdict(spec)), length=12)  # unchanged since the first release: caches stay valid
    folder = Path(cache_dir).expanduser() / "benchmarks" / f"builtin-{key}"
    splits = None if (folder / "full.json").is_file() else generate_benchmark(spec)  # an invalid spec fails here
    try:
        holdout = generate_holdout(spec)
    except ValueError as err:
        log.warning("The built-in benchmark gets no holdout splits: %s", err)
        holdout = {}
    if splits is not None:
        write_benchmark(folder, {**splits, **holdout})
    elif holdout:
        add_missing_splits(folder, holdout)
    return folder
