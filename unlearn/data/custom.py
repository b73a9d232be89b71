"""A user's own forget and retain sets (``data.source=files``): files, saved datasets or hub datasets.

Each set is a JSON Lines / JSON / CSV / Parquet file, a folder written by ``Dataset.save_to_disk``,
or a Hugging Face hub dataset id; ``data.columns.*`` maps its column names onto the project's
``question`` / ``answer`` / ``text``. A set is either question/answer pairs (``qa``, trained like
TOFU: labels on the answer and EOS) or raw documents (``text``): plain language modelling, labels
on every text token and a closing EOS, each document cut into ``data.max_length`` chunks. The loss
strategies read only the labels, so NPO, GA and the rest apply to documents unchanged.
"""

from __future__ import annotations

from pathlib import Path

from unlearn.data.formatting import TokenizedExample
from unlearn.data.sources import validate_rows
from unlearn.data.textfiles import check_data_file, looks_like_path, missing_path_message
from unlearn.errors import DataError

FORMATS = ("qa", "text")
READERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def read_dataset(path: str, split: str = "train", key: str = "data path") -> tuple[list[dict], list[str]]:
    """Rows and column names of a data file, a ``save_to_disk`` folder or a hub dataset.

    A CSV file's cells are read as text: ``NA``, ``None`` or ``42`` stay the strings they are.
    A value that looks like a path (:func:`~unlearn.data.textfiles.looks_like_path`) and does not
    exist is a missing file, never tried as a hub id.

    Raises:
        DataError: the path cannot be read, with what was tried.
    """
    import datasets

    local = Path(path).expanduser()
    if not local.exists() and looks_like_path(path):
        raise DataError(missing_path_message(key, path))
    try:
        if local.is_file():
            reader = READERS.get(local.suffix.lower())
            if reader is None:
                raise DataError(f"{path}: unknown file type '{local.suffix}'; use one of {', '.join(READERS)}, "
                                "a folder saved with Dataset.save_to_disk, or a hub dataset id.")
            header = check_data_file(local, reader)
            options = {}
            if reader == "csv":  # text stays text: no NA/None -> missing, no "007" -> 7
                options = {"keep_default_na": False, "na_filter": False, "encoding": "utf-8-sig"}
                if all(header) and len(set(header)) == len(header):
                    options["features"] = datasets.Features({name: datasets.Value("string") for name in header})
            dataset = datasets.load_dataset(reader, data_files=str(local), split="train", **options)
        elif local.is_dir():
            dataset = datasets.load_from_disk(str(local))
            if isinstance(dataset, datasets.DatasetDict):
                if split not in dataset:
                    raise DataError(f"{path} holds the splits {sorted(dataset)}, not '{split}'.")
                dataset = dataset[split]
        else:
            dataset = datasets.load_dataset(path, split=split)
    except DataError:
        raise
    except Exception as err:  # the datasets library raises many types for a missing or unreadable set
        raise DataError(f"Cannot read the dataset {path!r} ({type(err).__name__}: {err}). Give a JSONL/JSON/CSV/"
                        "Parquet file, a folder saved with Dataset.save_to_disk, or a hub dataset id.") from err
    return [dict(row) for row in dataset], list(dataset.column_names)


def load_custom_set(path: str | None, role: str, fmt: str, columns: dict[str, str]) -> list[dict]:
    """The rows of a forget or retain set, renamed to ``question``/``answer`` (qa) or ``text``.

    Args:
        path: The set (see :func:`read_dataset`).
        role: ``forget`` or ``retain``, for messages and the config key (``data.forget_path``).
        fmt: ``qa`` or ``text``.
        columns: The user's column names, ``{"question": ..., "answer": ..., "text": ...}``.

    Raises:
        DataError: no path, a missing column (naming the columns present), or an empty field.
    """
    if fmt not in FORMATS:
        raise DataError(f"data.{role}_format must be one of {', '.join(FORMATS)}, got '{fmt}'.")
    if not path:
        raise DataError(f"data.source=files needs data.{role}_path=... (a JSONL/CSV/Parquet file, a saved dataset "
                        "folder or a hub dataset id).")
    rows, present = read_dataset(path, key=f"data.{role}_path")
    wanted = ("question", "answer") if fmt == "qa" else ("text",)
    missing = [f"data.columns.{field}={columns[field]!r}" for field in wanted if columns[field] not in present]
    if missing:
        hint = "" if fmt == "text" else " (raw documents: set data.{}_format=text)".format(role)
        raise DataError(f"The {role} set {path} has no column for {', '.join(missing)}; its columns are "
                        f"{present}. Map them with data.columns.<field>=<column>{hint}.")
    renamed = [{field: row[columns[field]] for field in wanted} for row in rows]
    validate_rows(renamed, wanted, f"the {role} set {path}")
    return renamed


def tokenize_text(tokenizer, text: str, max_length: int) -> list[TokenizedExample]:
    """A document as language-modelling chunks of at most ``max_length`` tokens, every token a label.

    The document keeps the tokenizer's BOS, ends with EOS, and is cut into consecutive chunks; the
    first token of a chunk is a label too, though no loss falls on it (nothing precedes it).
    """
    ids = tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]
    chunks = [ids[start:start + max_length] for start in range(0, len(ids), max_length)]
    if len(chunks) > 1 and len(chunks[-1]) < 2:  # a lone token predicts nothing: give it to the chunk before
        chunks = chunks[:-1]
    # Not "truncated": chunking loses no text, so it is not reported as cut.
    return [TokenizedExample(list(chunk), list(chunk), False) for chunk in chunks]


def text_rows_and_examples(rows: list[dict], tokenizer, max_length: int) -> tuple[list[dict], list[TokenizedExample]]:
    """Every chunk of every document, with one row per chunk (``{"text", "document"}``) for the report."""
    out_rows, examples = [], []
    for number, row in enumerate(rows):
        for example in tokenize_text(tokenizer, row["text"], max_length):
            out_rows.append({"text": row["text"], "document": number})
            examples.append(example)
    return out_rows, examples
