"""``python -m unlearn fit``: unlearn a forget set from a causal LM.

One function per job (``fit(cfg)``), separate from argument parsing, so tests call it directly.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException

from unlearn.training.checkpoints import (CHECKPOINT_DIR, AtomicCheckpointIO, LastCheckpoint, RNGState, last_checkpoint,
                                 save_pretrained_atomic)
from unlearn.config.schema import Config, ConfigError, LossConfig
from unlearn.data.datamodule import UnlearningDataModule
from unlearn.data.sources import (builtin_benchmark_dir, forget_retain_overlap, load_idk_answers, load_split,
                                  retain_split_for)
from unlearn.training.distributed import (CollectiveError, SigtermWatchdog, check_strategy, is_collective_failure,
                                 is_launched_rank, is_multi_process, launched_run_dir, share_run_dir, strategy_name)
from unlearn.evaluation.job import NO_TOFU_SPLITS, check_eval_config
from unlearn.evaluation.tracking import format_fit_summary, setup_fit_evaluation
from unlearn.training.finetune import finetune
from unlearn.losses import build_loss
from unlearn.models.lora import apply_lora, model_for_saving
from unlearn.models.loading import load_model, load_tokenizer
from unlearn.training.module import UnlearningModule
from unlearn.reference.setup import build_reference
from unlearn.training.resume import (RunInterrupted, check_new_run, check_outside_inputs, check_resumable, open_run_directory,
                            resume_hint)
from unlearn.models.scoring import mean_token_nll
from unlearn.training.sharding import build_strategy, whole_weights
from unlearn.config.validation import validate

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
    elif cfg.data.source == "files":
        source = cfg.data.forget_path  # the retain set is read beside it (unlearn.data.custom)
    else:
        raise ConfigError(f"data.source must be 'builtin', 'tofu' or 'files', got '{cfg.data.source}'.")
    if cfg.model.path is not None:
        return Assets(source, cfg.model.path, cfg.model.retain_path, builtin=False)
    if cfg.data.source != "builtin":
        raise ConfigError("model.path is required unless data.source=builtin (the built-in model only knows "
                          "the built-in benchmark). Give a hub id or a local folder, e.g. model.path=locuslab/tofu_ft_llama2-7b.")
    models = finetune(cfg, source, builtin=True)
    return Assets(source, str(models["target"]), cfg.model.retain_path or str(models["retain"]), builtin=True)


def build_loss_from_config(cfg: Config):
    """The configured strategy (see ``LossConfig`` for which hyperparameters reach it).

    None takes the strategy's own default; a value left at the typed default goes only to
    strategies that accept it; a changed value the strategy does not accept is an error.
    """
    from unlearn.losses import LOSSES

    defaults = asdict(LossConfig())
    accepted = set(LOSSES[cfg.loss.name].hparam_names()) if cfg.loss.name in LOSSES else set()
    params = {k: v for k, v in asdict(cfg.loss).items()
              if k != "name" and v is not None and (k in accepted or v != defaults[k])}
    try:
        return build_loss(cfg.loss.name, **params)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"loss: {err}") from err


def load_files_sets(cfg: Config, uses_retain: bool) -> tuple[list[dict], list[dict], str]:
    """``data.source=files``: the forget rows, the retain rows (empty when the loss needs none) and a label."""
    from unlearn.data.custom import load_custom_set

    d, columns = cfg.data, asdict(cfg.data.columns)
    forget = load_custom_set(d.forget_path, "forget", d.forget_format, columns)
    retain = load_custom_set(d.retain_path, "retain", d.retain_format, columns) if uses_retain or d.retain_path else []
    return forget, retain, str(d.retain_path)


def run_directory(cfg: Config) -> Path:
    """The run's output folder, checked but not created (``unlearn.training.resume.open_run_directory`` does that).

    Raises:
        ConfigError: ``run.resume=true`` names no run folder, or the config differs from the run's.
        FileExistsError: a non-empty folder without ``run.overwrite=true``, or a finished run to resume.
    """
    launched = launched_run_dir(cfg.run.name, cfg.run.output_dir)
    if launched is not None:  # rank 0 has checked and created it (unlearn.training.distributed)
        return launched
    name = cfg.run.name or f"{cfg.loss.name}_{cfg.data.forget_split}_{datetime.now():%Y%m%d-%H%M%S}"
    run_dir = Path(cfg.run.output_dir).expanduser() / name
    if cfg.run.resume:
        check_resumable(cfg, run_dir)
    else:
        check_new_run(cfg, run_dir)
    return run_dir


class NLLProbe(L.Callback):
    """Mean per-token answer NLL on the forget and retain sets before unlearning and after each epoch.

    Keeping every epoch's numbers lets the summary report the epoch that became the run's model
    (model selection may keep an earlier one than the last); a pass over a few hundred rows is
    small next to an epoch of training.
    """

    def __init__(self, tokenizer, splits: dict[str, list[dict]], prompt_format: str, max_length: int):
        self.tokenizer, self.splits = tokenizer, splits
        self.prompt_format, self.max_length = prompt_format, max_length
        self.before: dict[str, float] = {}
        self.history: dict[int, dict[str, float]] = {}  # epochs completed -> NLL per split

    def _measure(self, trainer, pl_module) -> dict[str, float]:
        with whole_weights(trainer):  # every rank measures every row (unlearn.training.sharding)
            return {name: mean_token_nll(pl_module.policy, self.tokenizer, rows, self.prompt_format, self.max_length)
                    for name, rows in self.splits.items()}

    def on_train_start(self, trainer, pl_module):
        if not self.before:  # a resumed run restores the measurement from before its first update
            self.before = self._measure(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        self.history[trainer.current_epoch + 1] = self._measure(trainer, pl_module)

    def after(self, epoch: int | None = None) -> tuple[int, dict[str, float]]:
        """``(epoch, NLL per split)`` for ``epoch``, or for the last epoch measured."""
        if not self.history:
            return 0, self.before
        epoch = epoch if epoch in self.history else max(self.history)
        return epoch, self.history[epoch]

    def state_dict(self) -> dict:
        return {"before": self.before, "history": {str(k): v for k, v in self.history.items()}}

    def load_state_dict(self, state_dict: dict) -> None:
        self.before = state_dict["before"]
        self.history = {int(k): v for k, v in state_dict.get("history", {}).items()}


def build_policy(cfg: Config, target: str):
    """The starting policy: the target model, with LoRA adapters when configured (on the CPU)."""
    policy = load_model(target, cfg.model.dtype, cfg.model.trust_remote_code, cfg.model.attn_implementation)
    if cfg.model.lora.enabled:
        lora = cfg.model.lora
        policy = apply_lora(policy, lora.r, lora.alpha, lora.dropout, lora.target_modules)
    return policy


def save_model(policy, tokenizer, out: Path, merge_lora: bool = True) -> None:
    """Hugging Face format, safetensors, written to a temporary name and renamed when complete.

    Under LoRA the adapters are merged into the base weights unless ``merge_lora`` is false.
    """
    save_pretrained_atomic(model_for_saving(policy, merge_lora), tokenizer, out)


def fit(cfg: Config) -> dict:
    """Unlearn ``cfg.data.forget_split`` from the target model and write a run folder.

    Returns:
        The run summary (also written to ``<run>/summary.json``).
    """
    start = time.time()
    validate(cfg)
    check_eval_config(cfg)
    check_strategy(cfg.trainer.strategy)
    loss = build_loss_from_config(cfg)  # fail on a bad loss config before any slow work
    # Checked now, created only once every input has loaded: a failed start leaves no folder behind.
    run_dir = run_directory(cfg)
    assets = resolve_assets(cfg)
    check_outside_inputs(run_dir, (assets.target, assets.retain, assets.source, cfg.model.tokenizer,
                                   cfg.data.idk_path))
    L.seed_everything(cfg.run.seed, verbose=False)

    tokenizer = load_tokenizer(cfg.model.tokenizer or assets.target, cfg.model.trust_remote_code)

    if cfg.data.source == "files":
        forget_rows, retain_rows, retain_split = load_files_sets(cfg, loss.uses_retain)
    else:
        retain_split = cfg.data.retain_split or retain_split_for(cfg.data.forget_split)
        forget_rows = load_split(assets.source, cfg.data.forget_split)
        retain_rows = load_split(assets.source, retain_split)
    datamodule = UnlearningDataModule(
        forget_rows, retain_rows, load_idk_answers(assets.source, cfg.data.idk_path) if loss.uses_idk else [], tokenizer,
        cfg.model.prompt_format, cfg.data.max_length, cfg.data.batch_size, cfg.data.num_workers, cfg.data.seed,
        uses_retain=loss.uses_retain, uses_idk=loss.uses_idk, forget_format=cfg.data.forget_format,
        retain_format=cfg.data.retain_format)
    both_qa = cfg.data.forget_format == cfg.data.retain_format == "qa" and retain_rows
    data_report = {**datamodule.report(),
                   "forget_in_retain": forget_retain_overlap(forget_rows, retain_rows) if both_qa else 0}
    if data_report["forget_in_retain"]:
        log.warning("%d of %d forget rows also appear in the retain set '%s' (same question and answer): the forget "
                    "and retain terms pull them in opposite directions. Remove them from one of the splits.",
                    data_report["forget_in_retain"], len(forget_rows), retain_split)
    # The weights load after the data is checked, so a bad dataset fails in seconds, not minutes.
    policy = build_policy(cfg, assets.target)
    multi_process = is_multi_process(cfg.trainer.devices, cfg.trainer.num_nodes)
    strategy = build_strategy(cfg.trainer.strategy, policy, cfg.model.gradient_checkpointing,
                              cfg.trainer.collective_timeout_s, multi_process)
    if cfg.model.gradient_checkpointing and strategy_name(cfg.trainer.strategy) != "fsdp":  # FSDP checkpoints its own layers
        policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if is_launched_rank():  # only global rank 0 creates or writes the run folder
        checkpoint = last_checkpoint(run_dir) if cfg.run.resume else None
    else:
        checkpoint = open_run_directory(cfg, run_dir)
        share_run_dir(run_dir)
    reference = build_reference(cfg, loss, assets.target, datamodule, lambda: load_model(
        assets.target, cfg.model.dtype, cfg.model.trust_remote_code, cfg.model.attn_implementation), policy)

    module = UnlearningModule(policy, loss, reference, cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.warmup_epochs,
                              policy_factory=partial(build_policy, cfg, assets.target))
    probe_rows = {"forget": forget_rows[:SUMMARY_MAX_ROWS], "retain": retain_rows[:SUMMARY_MAX_ROWS]}
    probe = NLLProbe(tokenizer, {name: rows for name, rows in probe_rows.items() if rows},
                     cfg.model.prompt_format, cfg.data.max_length)
    evaluation = None
    if cfg.data.source == "files" and cfg.eval.enabled:
        log.info("%s TOFU's evaluation is skipped, and the summary reports the forget and retain NLL before "
                 "and after unlearning.", NO_TOFU_SPLITS)
    else:
        evaluation = setup_fit_evaluation(cfg, assets, tokenizer, run_dir)  # None when eval.enabled=false
    trainer = L.Trainer(
        max_epochs=cfg.trainer.max_epochs, accelerator=cfg.trainer.accelerator, devices=cfg.trainer.devices,
        num_nodes=cfg.trainer.num_nodes, strategy=strategy, precision=cfg.trainer.precision,
        accumulate_grad_batches=cfg.optim.accumulate_grad_batches, gradient_clip_val=cfg.optim.gradient_clip_val,
        log_every_n_steps=cfg.trainer.log_every_n_steps, deterministic=cfg.trainer.deterministic,
        enable_progress_bar=cfg.trainer.enable_progress_bar, enable_checkpointing=True,
        logger=TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version=""),
        callbacks=[probe, *(evaluation.callbacks if evaluation else []), RNGState(),
                   LastCheckpoint(run_dir / CHECKPOINT_DIR, cfg.run.checkpoint_every_n_steps)],
        plugins=[AtomicCheckpointIO()], default_root_dir=str(run_dir))
    train(trainer, module, datamodule, checkpoint, run_dir, cfg.trainer.collective_timeout_s)

    eval_summary = evaluation.summary() if evaluation else None
    nll_epoch, nll_after = probe.after(eval_summary["selected_epoch"] if eval_summary else None)
    summary = {
        "loss": cfg.loss.name, "loss_hparams": loss.hparams(), "forget_split": cfg.data.forget_split,
        "retain_split": retain_split, "target_model": assets.target, "retain_model": assets.retain,
        "nll_before": probe.before, "nll_after": nll_after, "nll_after_epoch": nll_epoch, "steps": trainer.global_step,
        "epochs": trainer.current_epoch, "seconds": None, "run_dir": str(run_dir), "model_dir": str(run_dir / "model"),
        "evaluation": eval_summary,
        "resumed_from": str(checkpoint) if checkpoint else None, "data": data_report,
    }
    # The selected epoch's weights may already be on disk; otherwise the final ones are saved (gathered
    # onto rank 0 first under a sharding strategy, which takes every rank).
    final = None if evaluation and evaluation.has_selected_weights() else module.whole_policy()
    if trainer.is_global_zero:
        if evaluation:
            evaluation.write_model(final, tokenizer, run_dir / "model", partial(save_model, merge_lora=cfg.model.lora.merge))
            (run_dir / "summary.md").write_text(format_fit_summary(summary["evaluation"]))
        else:
            save_model(final, tokenizer, run_dir / "model", cfg.model.lora.merge)
        summary["seconds"] = round(time.time() - start, 1)
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        if not cfg.run.keep_checkpoint:  # the model is saved; the optimiser state is only needed to resume
            shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)
        print(format_summary(summary))
    return summary


def train(trainer: L.Trainer, module, datamodule, checkpoint: Path | None, run_dir: Path, timeout_s: float) -> None:
    """``trainer.fit``, with the ways a run can stop turned into messages that say how to continue it.

    A collective that times out or loses a peer, and a SIGTERM that finds this process blocked in
    one (:class:`~unlearn.training.distributed.SigtermWatchdog`), end with the run folder, its last
    checkpoint and the exact ``--resume`` command; so does a SIGTERM handled by Lightning after
    the current batch.
    """
    def children() -> list:
        return list(getattr(trainer.strategy.launcher, "procs", None) or [])

    def stuck_message() -> str:
        return (f"stopped by SIGTERM while this process was waiting for the other processes of the run. "
                f"{resume_hint(run_dir)}")

    with warnings.catch_warnings():
        # Evaluation numbers are logged without a collective on purpose (callbacks/evaluation.py).
        warnings.filterwarnings("ignore", message=r".*self\.log\('(utility|forget)/.*sync_dist=True")
        _fit_with_messages(trainer, module, datamodule, checkpoint, run_dir, timeout_s, children, stuck_message)


def _fit_with_messages(trainer, module, datamodule, checkpoint, run_dir, timeout_s, children, stuck_message) -> None:
    try:
        with SigtermWatchdog(stuck_message, children):
            trainer.fit(module, datamodule=datamodule, ckpt_path=checkpoint, weights_only=True)
    except SIGTERMException as err:
        raise RunInterrupted(f"stopped by SIGTERM after the last finished batch, whose state is saved. "
                             f"{resume_hint(run_dir)}") from err
    except Exception as err:
        if trainer.world_size < 2 or not is_collective_failure(err):
            raise
        for child in children():  # ranks this process launched wait in the same broken collectives
            child.kill()
        first_line = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        raise CollectiveError(
            f"the processes of this run stopped waiting for each other: a collective operation did not complete "
            f"within trainer.collective_timeout_s={timeout_s:g} s, or another process of the run ended "
            f"(torch: {first_line}). Look for an error in the other processes' output first. "
            f"{resume_hint(run_dir)}") from err


def format_summary(summary: dict) -> str:
    lines = [f"\nUnlearning finished: {summary['loss']} on {summary['forget_split']} "
             f"({summary['steps']} steps, {summary['seconds']} s)",
             f"Mean answer NLL per token, before unlearning and after epoch {summary['nll_after_epoch']} "
             "(the epoch saved as the model):",
             f"{'split':<8} {'NLL before':>11} {'NLL after':>10} {'change':>8}"]
    for split, before in summary["nll_before"].items():
        after = summary["nll_after"].get(split, float("nan"))
        lines.append(f"{split:<8} {before:>11.3f} {after:>10.3f} {after / before - 1:>+8.0%}")
    if summary.get("evaluation"):
        lines.append("\n" + format_fit_summary(summary["evaluation"]))
    for warning in data_warnings(summary.get("data") or {}):
        lines.append(f"Warning: {warning}")
    lines.append(f"Unlearned model: {summary['model_dir']}")
    lines.append(f"TensorBoard:     tensorboard --logdir {summary['run_dir']}")
    return "\n".join(lines)


def data_warnings(report: dict) -> list[str]:
    """One line per data problem worth repeating under the results (the full warning is logged earlier)."""
    lines = []
    cut = {name: n for name, n in report.get("truncated", {}).items() if n}
    if cut:
        lines.append(", ".join(f"{n} {name}" for name, n in cut.items()) + " examples were cut to "
                     f"data.max_length={report.get('max_length')}; raise it to train on whole answers.")
    if report.get("forget_in_retain"):
        lines.append(f"{report['forget_in_retain']} forget rows are also in the retain set.")
    return lines
