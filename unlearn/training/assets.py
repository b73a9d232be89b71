"""Where a run's benchmark and models come from, and, for the built-in benchmark, making them.

The built-in benchmark is generated and cached under ``run.cache_dir``, and its target and retain
models are trained there on first use (:func:`unlearn.training.finetune.finetune`); every other
source names its files and models itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from unlearn.config.schema import Config
from unlearn.data.sources import builtin_benchmark_dir
from unlearn.errors import ConfigError
from unlearn.names import TOFU_HUB_ID


@dataclass
class Assets:
    """Where a run's benchmark and models come from."""

    source: Path | str  # folder or hub id of the benchmark files
    target: str  # the model to unlearn
    retain: str | None  # the model trained without the forget set, when known


def builtin_spec(cfg: Config):
    """The built-in benchmark that ``data.builtin.*`` describes (a :class:`~unlearn.data.synthetic.BenchmarkSpec`)."""
    from unlearn.data.synthetic import BenchmarkSpec

    return BenchmarkSpec(**{**asdict(cfg.data.builtin), "forget_percents": tuple(cfg.data.builtin.forget_percents)})


def resolve_assets(cfg: Config) -> Assets:
    """Locate (and on the built-in benchmark, create and cache) the benchmark and models."""
    if cfg.data.source == "builtin":
        source = builtin_benchmark_dir(cfg.run.cache_dir, builtin_spec(cfg))
    elif cfg.data.source == "tofu":
        source = cfg.data.path or TOFU_HUB_ID
    elif cfg.data.source == "files":
        source = cfg.data.forget_path  # the retain set is read beside it (unlearn.data.custom)
    else:
        raise ConfigError(f"data.source must be 'builtin', 'tofu' or 'files', got '{cfg.data.source}'.")
    if cfg.model.path is not None:
        return Assets(source, cfg.model.path, cfg.model.retain_path)
    if cfg.data.source != "builtin":
        raise ConfigError("model.path is required unless data.source=builtin (the built-in model only knows "
                          "the built-in benchmark). Give a hub id or a local folder, e.g. model.path=locuslab/tofu_ft_llama2-7b.")
    from unlearn.training.finetune import finetune

    models = finetune(cfg, source, builtin=True)
    return Assets(source, str(models["target"]), cfg.model.retain_path or str(models["retain"]))
