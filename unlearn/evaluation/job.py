"""``python -m unlearn eval``: a benchmark's metrics for any causal LM, against a retain model's stored results.

One function per job (``evaluate(cfg)``), separate from argument parsing. ``fit`` composes the
helpers here too (the same evaluator, the same stored retain results); they take plain values,
not the config.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch

from unlearn.config.schema import Config, ModelConfig, RunConfig
from unlearn.data.formatting import PromptFormat
from unlearn.errors import ConfigError, RunFolderError
from unlearn.evaluation.benchmarks import NO_BENCHMARK, benchmark_of, build_evaluator
from unlearn.evaluation.cache import load_result, result_path, store_result
from unlearn.evaluation.results import format_table
from unlearn.evaluation.tofu_log import is_tofu_log, load_tofu_log
from unlearn.files import atomic_write_text, check_writable
from unlearn.models.loading import load_model, load_tokenizer
from unlearn.training.assets import BUILTIN_SOURCES, resolve_assets

log = logging.getLogger(__name__)


def evaluation_device(accelerator: str) -> torch.device:
    """The GPU of this process (``LOCAL_RANK``) when there is one and ``accelerator`` allows it, else the CPU."""
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def evaluate_model(load_model: Callable[[str], object], model_path: str, evaluator, device: torch.device):
    """Load ``model_path`` with ``load_model``, evaluate it on ``device``, free it."""
    model = load_model(model_path)
    result = evaluator(model.to(device), rank=0, world_size=1)
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    result.info["model"] = str(model_path)
    return result


def retain_results(retain_path: str | None, evaluator, device: torch.device, cache_dir: str,
                   dtype: str, load_model: Callable[[str], object]):
    """The retain model's results: stored ones when they match, else evaluated now and stored; read from its TOFU
    evaluation log when ``retain_path`` is one (:mod:`unlearn.evaluation.tofu_log`).

    Returns:
        None when there is no retain model (forget quality is then reported as unavailable).
    """
    if retain_path is None:
        return None
    if is_tofu_log(retain_path):  # the stored log of a retain model, as the NPO code compares with
        log.info("Reading the retain model's results from the TOFU evaluation log %s", retain_path)
        return load_tofu_log(retain_path)
    path = result_path(cache_dir, retain_path, {**evaluator.settings, "dtype": dtype})
    cached = load_result(path)
    if cached is not None:
        log.info("Reusing the retain model's evaluation from %s", path)
        return cached
    log.info("Evaluating the retain model %s (stored in %s for later runs)", retain_path, path)
    result = evaluate_model(load_model, retain_path, evaluator, device)
    result.compare_with_retain(result)
    store_result(path, result)
    return result


def model_loader(model: ModelConfig) -> Callable[[str], object]:
    """``load(path)`` with the run's dtype, remote-code and attention settings."""
    return partial(load_model, dtype=model.dtype, trust_remote_code=model.trust_remote_code,
                   attn_implementation=model.attn_implementation)


def output_folder(run: RunConfig, model_path: str, out: str | Path | None) -> Path:
    """``out``, or ``<run.output_dir>/eval_<name>``: ``run.name``, else the model's folder (the run's, for ``<run>/model``).

    An existing non-empty folder needs ``run.overwrite=true``. Nothing is created or deleted here
    (:func:`make_output_folder` does it once the results exist), so a refused evaluation leaves no folder.

    Raises:
        RunFolderError: a non-empty folder without ``run.overwrite=true``.
        ConfigError: a folder this process cannot write to.
    """
    if out is None:
        path = Path(str(model_path).rstrip("/"))
        # A run's model lives in <run>/model: name the evaluation after the run.
        name = run.name or (path.parent.name if path.name == "model" and path.parent.name else path.name)
        safe = re.sub(r"[^\w.-]+", "_", name or str(model_path))
        out = Path(run.output_dir).expanduser() / f"eval_{safe}"
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"Output folder {out} is a file, not a folder. Choose another --out or run.name.")
    if out.exists() and any(out.iterdir()) and not run.overwrite:
        raise RunFolderError(f"Output folder {out} already exists and is not empty. Choose another --out "
                              "or run.name, or pass run.overwrite=true to replace it.")
    check_writable(out, "--out (or run.output_dir)")
    return out


def make_output_folder(out: Path, overwrite: bool) -> Path:
    """Create ``out`` (checked by :func:`output_folder`), replacing a non-empty one under ``run.overwrite=true``."""
    if overwrite and out.exists() and any(out.iterdir()):
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def check_not_a_run_folder(model_path: str | None) -> None:
    """``model.path=runs/X`` (a run folder, whose model is ``runs/X/model``) is refused with the path meant.

    Raises:
        ConfigError: ``model_path`` holds a run's ``config.yaml`` or ``model/`` but no model of its own.
    """
    path = Path(str(model_path)).expanduser() if model_path else None
    if path is None or not path.is_dir() or (path / "config.json").is_file():
        return
    if (path / "model").is_dir():
        raise ConfigError(f"model.path={model_path} is a run folder, not a model; did you mean "
                          f"model.path={path / 'model'}?")
    if (path / "config.yaml").is_file() and (path / "checkpoints").is_dir():
        raise ConfigError(f"model.path={model_path} is a run folder that has not finished (no {path / 'model'} "
                          "yet); resume it with fit --resume, or evaluate a finished run's model folder.")


def evaluate(cfg: Config, model_path: str | None = None, out: str | Path | None = None) -> dict:
    """Evaluate a model (default: ``model.path``, else the built-in target) and write ``eval.json`` and ``eval.md``.

    Forget quality compares with ``model.retain_path`` (default on the built-in benchmark: the
    built-in retain model), whose results are stored under ``run.cache_dir`` and reused.

    Returns:
        What ``eval.json`` holds: the summary, per-question values, the retain model's summary.
    """
    if benchmark_of(cfg.data.source) is None:
        raise ConfigError(f"python -m unlearn eval computes a benchmark's metrics. {NO_BENCHMARK} Point it at a "
                          "benchmark instead (data.source=tofu with data.path, data.source=muse, or the built-in "
                          "one); a fit on your own files reports the forget and retain NLL before and after.")
    if model_path is not None:
        cfg = replace(cfg, model=replace(cfg.model, path=str(model_path)))
    check_not_a_run_folder(cfg.model.path)
    check_writable(cfg.run.cache_dir, "run.cache_dir")
    assets = resolve_assets(cfg)
    model_path = str(assets.target)
    retain_path = cfg.model.retain_path or assets.retain
    if retain_path is None and cfg.data.source in BUILTIN_SOURCES:  # the built-in retain model (trained on first use)
        retain_path = resolve_assets(replace(cfg, model=replace(cfg.model, path=None))).retain
    out = output_folder(cfg.run, model_path, out)

    tokenizer = load_tokenizer(cfg.model.tokenizer or model_path, cfg.model.trust_remote_code)
    evaluator = build_evaluator(assets.source, cfg.data, tokenizer, PromptFormat.for_model(cfg.model), cfg.eval)
    device, load = evaluation_device(cfg.trainer.accelerator), model_loader(cfg.model)
    retain = retain_results(retain_path, evaluator, device, cfg.run.cache_dir, cfg.model.dtype, load)
    if retain is not None and Path(retain_path).expanduser().resolve() == Path(model_path).expanduser().resolve():
        result = retain  # the retain model itself: forget quality 1.0 by definition of the test
    else:
        result = evaluate_model(load, model_path, evaluator, device).compare_with_retain(retain)
    result.info.update(model=model_path, retain_model=retain_path)

    out = make_output_folder(out, cfg.run.overwrite)  # only now: a refused or failed evaluation leaves no folder
    report = result.to_dict()
    report["retain_summary"] = None if retain is None else retain.summary()
    atomic_write_text(out / "eval.json", json.dumps(report, indent=1))
    atomic_write_text(out / "eval.md", format_report(result, retain))
    print(format_report(result, retain))
    print(f"\nWrote {out / 'eval.json'} and {out / 'eval.md'}")
    return report


def format_report(result, retain, samples: int = 3) -> str:
    """Markdown: the summary table (with the retain model's column when known), what is unavailable and why,
    and a few generations."""
    columns = {"model": result.summary()}
    if retain is not None and retain is not result:
        columns["retain model"] = retain.summary()
    lines = [f"# Evaluation of `{result.info.get('model')}`", "", format_table(columns, result.BENCHMARK), ""]
    unavailable = list(result.unavailable())
    if getattr(result, "forget_quality_reason", None) and result.forget_quality is None:
        unavailable.insert(0, f"Forget quality is unavailable: {result.forget_quality_reason}")
    lines += [f"- {reason}." for reason in unavailable] + ([""] if unavailable else [])
    for name, triples in result.samples().items():
        if not triples:
            continue
        lines += [f"## Sample generations ({name})", ""]
        for prompt, truth, generation in triples[:samples]:
            lines += [f"- **prompt:** {_one_line(prompt)}", f"  - **true:** {_one_line(truth)}",
                      f"  - **model:** {_one_line(generation)}"]
        lines.append("")
    return "\n".join(lines)


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "…"
