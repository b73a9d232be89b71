"""The forget and retain rows of a run, whatever the source (built-in, TOFU or the user's own files)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from unlearn.config.schema import DataConfig
from unlearn.data.sources import load_split, retain_split_for


@dataclass
class RunRows:
    """What a run trains on: forget rows, retain rows (empty when unused) and the retain set's name."""

    forget: list[dict]
    retain: list[dict]
    retain_split: str


def load_run_rows(data: DataConfig, source: Path | str, uses_retain: bool) -> RunRows:
    """The rows ``data`` names: TOFU-format splits of ``source``, or ``data.forget_path``/``retain_path`` files.

    With the user's files the retain set is read only when the loss uses it or a path is given.
    """
    if data.source == "files":
        from unlearn.data.custom import load_custom_set

        columns = asdict(data.columns)
        forget = load_custom_set(data.forget_path, "forget", data.forget_format, columns)
        retain = (load_custom_set(data.retain_path, "retain", data.retain_format, columns)
                  if uses_retain or data.retain_path else [])
        return RunRows(forget, retain, str(data.retain_path))
    retain_split = data.retain_split or retain_split_for(data.forget_split)
    return RunRows(load_split(source, data.forget_split), load_split(source, retain_split), retain_split)
