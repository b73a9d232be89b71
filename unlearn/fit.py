"""``python -m unlearn fit``: unlearn a forget set from a causal LM.

One function per job (``fit(cfg)``), separate from argument parsing, so tests call it directly.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger

from unlearn.config import Config, ConfigError, save_config
from unlearn.data.datamodule import UnlearningDataModule
from unlearn.data.sources import builtin_benchmark_dir, load_idk_answers, load_split, retain_split_for
from unlearn.finetune import finetune
from unlearn.losses import build_loss
from unlearn.models import load_model, load_tokenizer
from unlearn.module import UnlearningModule
from unlearn.reference import ModelReference
from unlearn.scoring import mean_token_nll

log = logging.getLogger(__name__)
SUMMARY_MAX_ROWS = 400  # NLL before/after is a quick health check, not the evaluation


@dataclass
class Assets:
    """Where a run's benchmark and models come from."""

    source: Path | str  # folder or hub id of the benchmark files
    target: str  # the model to unlearn
    retain: str | None  # the model trained without the forget set, when known
    builtin: bool


def resolve_assets(cfg: Config) -> Assets:
    """Locate (and on the built-in benchmark, create and cache) the benchmark and models."""
    if cfg.data.source == "builtin":
        from unlearn.data.synthetic import BenchmarkSpec

        spec = BenchmarkSpec(**{**asdict(cfg.data.builtin), "forget_percents": tuple(cfg.data.builtin.forget_percents)})
        source = builtin_benchmark_dir(cfg.run.cache_dir, spec)
    elif cfg.data.source == "tofu":
        source = cfg.data.path or "locuslab/TOFU"
    else:
        raise ConfigError(f"data.source must be 'builtin' or 'tofu', got '{cfg.data.source}'.")
    if cfg.model.path is not None:
        return Assets(source, cfg.model.path, cfg.model.retain_path, builtin=False)
    if cfg.data.source != "builtin":
        raise ConfigError("model.path is required unless data.source=builtin (the built-in model only knows "
                          "the built-in benchmark). Give a hub id or a local folder, e.g. model.path=locuslab/tofu_ft_llama2-7b.")
    models = finetune(cfg, source, builtin=True)
    return Assets(source, str(models["target"]), cfg.model.retain_path or str(models["retain"]), builtin=True)


def build_loss_from_config(cfg: Config):
    """The configured strategy; hyperparameters left at None take the strategy's defaults."""
    params = {k: v for k, v in asdict(cfg.loss).items() if k != "name" and v is not None}
    try:
        return build_loss(cfg.loss.name, **params)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"loss: {err}") from err


def run_directory(cfg: Config, model_paths: tuple[str | None, ...] = ()) -> Path:
    """The run's output folder. An existing non-empty one is an error unless ``run.overwrite=true``."""
    name = cfg.run.name or f"{cfg.loss.name}_{cfg.data.forget_split}_{datetime.now():%Y%m%d-%H%M%S}"
    run_dir = Path(cfg.run.output_dir).expanduser() / name
    for model in model_paths:
        if model and Path(model).exists() and Path(model).resolve().is_relative_to(run_dir.resolve()):
            raise ConfigError(f"The run folder {run_dir} contains the input model {model}; choose another run.name.")
    if run_dir.exists() and any(run_dir.iterdir()):
        if not cfg.run.overwrite:
            raise FileExistsError(f"Run folder {run_dir} already exists and is not empty. Choose another "
                                  "run.name, or pass run.overwrite=true to replace it.")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


class NLLProbe(L.Callback):
    """Mean per-token answer NLL on the forget and retain sets before and after unlearning."""

    def __init__(self, tokenizer, splits: dict[str, list[dict]], prompt_format: str, max_length: int):
        self.tokenizer, self.splits = tokenizer, splits
        self.prompt_format, self.max_length = prompt_format, max_length
        self.before: dict[str, float] = {}
        self.after: dict[str, float] = {}

    def _measure(self, pl_module) -> dict[str, float]:
        return {name: mean_token_nll(pl_module.policy, self.tokenizer, rows, self.prompt_format, self.max_length)
                for name, rows in self.splits.items()}

    def on_train_start(self, trainer, pl_module):
        self.before = self._measure(pl_module)

    def on_train_end(self, trainer, pl_module):
        self.after = self._measure(pl_module)


def save_model(policy, tokenizer, out: Path) -> None:
    """Hugging Face format, safetensors, written to a temporary name and renamed when complete."""
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    policy.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out)


def fit(cfg: Config) -> dict:
    """Unlearn ``cfg.data.forget_split`` from the target model and write a run folder.

    Returns:
        The run summary (also written to ``<run>/summary.json``).
    """
    start = time.time()
    loss = build_loss_from_config(cfg)  # fail on a bad loss config before any slow work
    assets = resolve_assets(cfg)
    run_dir = run_directory(cfg, (assets.target, assets.retain))
    save_config(cfg, run_dir / "config.yaml")
    L.seed_everything(cfg.run.seed, verbose=False)

    tokenizer = load_tokenizer(cfg.model.tokenizer or assets.target, cfg.model.trust_remote_code)
    policy = load_model(assets.target, cfg.model.dtype, cfg.model.trust_remote_code, cfg.model.attn_implementation)
    if cfg.model.gradient_checkpointing:
        policy.gradient_checkpointing_enable()
    reference = None
    if loss.needs_reference_logps or loss.needs_reference_logits:
        reference = ModelReference(load_model(assets.target, cfg.model.dtype, cfg.model.trust_remote_code,
                                              cfg.model.attn_implementation))

    retain_split = cfg.data.retain_split or retain_split_for(cfg.data.forget_split)
    forget_rows = load_split(assets.source, cfg.data.forget_split)
    retain_rows = load_split(assets.source, retain_split)
    datamodule = UnlearningDataModule(
        forget_rows, retain_rows, load_idk_answers(assets.source) if loss.uses_idk else [], tokenizer,
        cfg.model.prompt_format, cfg.data.max_length, cfg.data.batch_size, cfg.data.num_workers, cfg.data.seed,
        uses_retain=loss.uses_retain, uses_idk=loss.uses_idk)

    module = UnlearningModule(policy, loss, reference, cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.warmup_epochs)
    probe = NLLProbe(tokenizer, {"forget": forget_rows[:SUMMARY_MAX_ROWS], "retain": retain_rows[:SUMMARY_MAX_ROWS]},
                     cfg.model.prompt_format, cfg.data.max_length)
    trainer = L.Trainer(
        max_epochs=cfg.trainer.max_epochs, accelerator=cfg.trainer.accelerator, devices=cfg.trainer.devices,
        num_nodes=cfg.trainer.num_nodes, strategy=cfg.trainer.strategy, precision=cfg.trainer.precision,
        accumulate_grad_batches=cfg.optim.accumulate_grad_batches, gradient_clip_val=cfg.optim.gradient_clip_val,
        log_every_n_steps=cfg.trainer.log_every_n_steps, deterministic=cfg.trainer.deterministic,
        enable_progress_bar=cfg.trainer.enable_progress_bar, enable_checkpointing=False,
        logger=TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version=""),
        callbacks=[probe], default_root_dir=str(run_dir))
    trainer.fit(module, datamodule=datamodule)

    summary = {
        "loss": cfg.loss.name, "loss_hparams": loss.hparams(), "forget_split": cfg.data.forget_split,
        "retain_split": retain_split, "target_model": assets.target, "retain_model": assets.retain,
        "nll_before": probe.before, "nll_after": probe.after, "steps": trainer.global_step,
        "epochs": trainer.current_epoch, "seconds": None, "run_dir": str(run_dir), "model_dir": str(run_dir / "model"),
    }
    if trainer.is_global_zero:
        save_model(policy, tokenizer, run_dir / "model")
        summary["seconds"] = round(time.time() - start, 1)
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        print(format_summary(summary))
    return summary


def format_summary(summary: dict) -> str:
    lines = [f"\nUnlearning finished: {summary['loss']} on {summary['forget_split']} "
             f"({summary['steps']} steps, {summary['seconds']} s)",
             f"{'split':<8} {'NLL before':>11} {'NLL after':>10} {'change':>8}"]
    for split, before in summary["nll_before"].items():
        after = summary["nll_after"].get(split, float("nan"))
        lines.append(f"{split:<8} {before:>11.3f} {after:>10.3f} {after / before - 1:>+8.0%}")
    lines.append(f"Unlearned model: {summary['model_dir']}")
    lines.append(f"TensorBoard:     tensorboard --logdir {summary['run_dir']}")
    return "\n".join(lines)
