"""The forget and retain rows of a run, whatever the source (built-in, TOFU, MUSE or the user's own files)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from unlearn.config.schema import DataConfig
from unlearn.data.muse import is_muse, load_muse_corpora, retain_split_or_default
from unlearn.data.sources import load_split, retain_split_for
from unlearn.errors import ConfigError


@dataclass
class RunRows:
    """What a run trains on: forget rows, retain rows (empty when unused) and the retain set's name
    (the split, or the user's retain file; None when no retain set is read)."""

    forget: list[dict]
    retain: list[dict]
    retain_split: str | None


def forget_set_name(data: DataConfig) -> str:
    """A short name for what the run forgets: the forget split, or the stem of the user's forget file
    (``data.forget_path=data/my_authors.jsonl`` -> ``my_authors``), as the run folder's name uses it; on MUSE the
    corpus and the split (``muse-news_forget``, ``muse_forget`` for the built-in one)."""
    if is_muse(data.source):  # MUSE's forget split is just "forget": say which corpus
        corpus = "muse" if data.source == "muse_builtin" else Path(str(data.path).rstrip("/")).name.lower()
        return f"{corpus}_{data.forget_split}"
    if data.source != "files" or not data.forget_path:
        return data.forget_split
    stem = Path(str(data.forget_path).rstrip("/\\")).stem or "files"
    return re.sub(r"[^\w.-]+", "-", stem).strip("-.") or "files"


def set_names(data: DataConfig) -> str:
    """The settings that chose the forget and retain sets, with their values, for messages."""
    if data.source in ("files", "wmdp"):
        return f"data.forget_path={data.forget_path} and data.retain_path={data.retain_path}"
    if data.source == "hazard_builtin":
        return "the hazard stand-in's forget and retain corpora"
    if is_muse(data.source):
        retain = retain_split_or_default(data.retain_split)
        return f"data.forget_split={data.forget_split} and data.retain_split={retain}"
    return f"data.forget_split={data.forget_split} and data.retain_split={data.retain_split or retain_split_for(data.forget_split)}"


def load_run_rows(data: DataConfig, source: Path | str, uses_retain: bool) -> RunRows:
    """The rows ``data`` names: TOFU-format splits of ``source``, MUSE's raw corpora, or the user's files.

    With the user's files the retain set is read only when the loss uses it or a path is given. On
    MUSE (``data.source=muse`` or ``muse_builtin``) both sets are raw articles, text rows
    ``{"text"}`` (``data.forget_format=text``): the ``raw`` config's ``data.forget_split`` and
    ``data.retain_split`` (``retain1`` when unset). The WMDP stand-in (``hazard_builtin``) unlearns its
    two corpora as text rows (:func:`~unlearn.data.hazard_synthetic.unlearning_rows`: forget = the hazardous
    documents, retain = the general ones); ``wmdp`` reads the user's corpora as ``files`` does.

    Raises:
        DataError: a split that is missing or empty, or a row without its fields.
        ConfigError: ``data.source=wmdp`` without ``data.forget_path`` (its questions are not training data).
    """
    if data.source == "hazard_builtin":
        from unlearn.data.hazard_synthetic import load_hazard_benchmark, unlearning_rows

        forget, retain = unlearning_rows(load_hazard_benchmark(source))
        return RunRows(forget, retain, "general")
    if data.source == "wmdp" and not data.forget_path:
        raise ConfigError("data.source=wmdp evaluates on WMDP's questions, which are not training data: unlearning "
                          "needs the corpora as files of {\"text\"} rows, data.forget_path=... and data.retain_path=... "
                          "(WMDP's are on the hub: cais/wmdp-corpora and cais/wmdp-bio-forget-corpus, exported to "
                          "JSONL), with data.forget_format=text. `python -m unlearn eval data=wmdp model.path=...` "
                          "needs neither.")
    if is_muse(data.source):
        retain_split = retain_split_or_default(data.retain_split)
        forget, retain = load_muse_corpora(source, data.forget_split, retain_split)
        return RunRows(forget, retain, retain_split)
    if data.source in ("files", "wmdp"):
        from unlearn.data.custom import load_custom_set

        columns = asdict(data.columns)
        forget = load_custom_set(data.forget_path, "forget", data.forget_format, columns)
        retain = (load_custom_set(data.retain_path, "retain", data.retain_format, columns)
                  if uses_retain or data.retain_path else [])
        return RunRows(forget, retain, str(data.retain_path) if retain else None)
    retain_split = data.retain_split or retain_split_for(data.forget_split)
    return RunRows(load_split(source, data.forget_split), load_split(source, retain_split), retain_split)
