"""``python -m unlearn fit``: unlearn a forget set from a causal LM.

:func:`fit` is the composition root: it reads the configuration, turns it into objects once
(data module, policy, reference, loss, callbacks, trainer) and hands them on. Nothing below it
reads the configuration; the run folder alone records it (``config.yaml``, compared on resume).
docs/architecture.md shows the whole flow.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from datetime import datetime
from functools import partial
from pathlib import Path

import lightning as L

from unlearn.callbacks.checkpointing import LastCheckpoint, RNGState
from unlearn.callbacks.nll_probe import NLLProbe
from unlearn.callbacks.run_config import RunConfig
from unlearn.config.schema import Config, to_yaml
from unlearn.data.datamodule import UnlearningDataModule
from unlearn.data.formatting import PromptFormat
from unlearn.data.rows import forget_set_name, load_run_rows, set_names
from unlearn.data.sources import forget_retain_overlap, load_idk_answers
from unlearn.evaluation.benchmarks import NO_BENCHMARK, benchmark_of, build_evaluator
from unlearn.names import BENCHMARKS
from unlearn.evaluation.job import evaluation_device, model_loader, retain_results
from unlearn.evaluation.tofu_log import is_tofu_log, load_tofu_log
from unlearn.evaluation.tracking import FitEvaluation, setup_fit_evaluation
from unlearn.files import atomic_write_text, check_writable
from unlearn.losses import build_loss_from_config
from unlearn.models.context import check_context_length
from unlearn.models.loading import load_tokenizer
from unlearn.models.policy import build_policy
from unlearn.models.saving import save_model
from unlearn.reference.setup import build_reference
from unlearn.reporting.question_ci import SELECTED_EVAL, run_intervals
from unlearn.reporting.summary import format_fit_summary, format_summary
from unlearn.training.assets import Assets, resolve_assets
from unlearn.training.checkpoints import CHECKPOINT_DIR, last_checkpoint
from unlearn.training.distributed import (check_strategy, is_launched_rank, is_multi_process, launched_run_dir,
                                          share_run_dir, strategy_name)
from unlearn.training.module import UnlearningModule
from unlearn.training.resume import check_new_run, check_outside_inputs, check_resumable, open_run_directory
from unlearn.training.run_lock import lock_run_folder
from unlearn.training.runner import build_trainer, train
from unlearn.training.sharding import build_strategy

log = logging.getLogger(__name__)
SUMMARY_MAX_ROWS = 400  # NLL before/after is a quick health check, not the evaluation


def run_directory(cfg: Config) -> Path:
    """The run's output folder, neither checked (:func:`check_run_directory`) nor created
    (``unlearn.training.resume.open_run_directory``)."""
    launched = launched_run_dir(cfg.run.name, cfg.run.output_dir)
    if launched is not None:  # rank 0 has checked and created it (unlearn.training.distributed)
        return launched
    name = cfg.run.name or f"{cfg.loss.name}_{forget_set_name(cfg.data)}_{datetime.now():%Y%m%d-%H%M%S}"
    return Path(cfg.run.output_dir).expanduser() / name


def check_run_directory(cfg: Config, run_dir: Path) -> None:
    """Check the run folder for this run (in the process that owns it; a launched rank reuses rank 0's).

    Raises:
        ConfigError: ``run.resume=true`` names no run folder, or the config differs from the run's.
        RunFolderError: a non-empty folder without ``run.overwrite=true``, a folder that is no run,
            or a finished run to resume.
        ConfigError: also when ``run.output_dir`` (or the run folder) or ``run.cache_dir`` is not writable.
    """
    if is_launched_rank():
        return
    # Every folder the run writes to, before any model or data loads (the lock already sits in run.output_dir).
    check_writable(run_dir if run_dir.exists() else cfg.run.output_dir, "run.output_dir")
    check_writable(cfg.run.cache_dir, "run.cache_dir")
    if cfg.run.resume:
        check_resumable(cfg, run_dir)
    else:
        check_new_run(cfg, run_dir)


def fit_evaluation(cfg: Config, assets: Assets, tokenizer, run_dir: Path) -> FitEvaluation | None:
    """The evaluation callbacks of the run (None when off or impossible); evaluates the retain model if not stored."""
    if not cfg.eval.enabled:
        return None
    benchmark = benchmark_of(cfg.data.source)
    if benchmark is None:
        log.info("%s The evaluation is skipped, and the summary reports the forget and retain NLL before "
                 "and after unlearning.", NO_BENCHMARK)
        return None
    evaluator = build_evaluator(assets.source, cfg.data, tokenizer, PromptFormat.for_model(cfg.model), cfg.eval)
    retain = retain_results(assets.retain, evaluator, evaluation_device(cfg.trainer.accelerator), cfg.run.cache_dir,
                            cfg.model.dtype, model_loader(cfg.model))
    return setup_fit_evaluation(evaluator, retain, cfg.eval.every_n_epochs, cfg.eval.num_logged_samples,
                                cfg.eval.selection, cfg.eval.collapse_fraction, run_dir / "selected",
                                lambda policy, out: save_model(policy, tokenizer, out, merge_lora=cfg.model.lora.merge),
                                benchmark, run_dir / SELECTED_EVAL)


def fit(cfg: Config) -> dict:
    """Unlearn ``cfg.data.forget_split`` from the target model and write a run folder.

    ``cfg`` comes validated from :func:`unlearn.config.load_config`.

    Returns:
        The run summary (also written to ``<run>/summary.json``).
    """
    start = time.time()
    check_strategy(cfg.trainer.strategy)
    loss = build_loss_from_config(cfg.loss, max_length=cfg.data.max_length)
    run_dir = run_directory(cfg)
    # One run per folder: the process that owns it (global rank 0, never a launched rank) locks it before any
    # check or slow work and holds it until the run returns or raises (unlearn.training.run_lock).
    with lock_run_folder(run_dir, owner=not is_launched_rank()):
        # Checked now, created only once every input has loaded: a failed start leaves no folder behind.
        check_run_directory(cfg, run_dir)
        return _fit_in(cfg, loss, run_dir, start)


def _fit_in(cfg: Config, loss, run_dir: Path, start: float) -> dict:
    """The run itself, in ``run_dir`` (checked, and locked by this process unless it is a launched rank)."""
    assets = resolve_assets(cfg)
    check_outside_inputs(run_dir, (assets.target, assets.retain, assets.source, cfg.model.tokenizer,
                                   cfg.data.idk_path))
    # From the models' configs, before any weights load: examples longer than the context are refused.
    check_context_length([assets.target, assets.retain], cfg.data.max_length, cfg.model.trust_remote_code)
    if is_tofu_log(assets.retain):  # the retain model's stored TOFU log: a broken one fails before the run folder
        load_tofu_log(assets.retain)
    L.seed_everything(cfg.run.seed, verbose=False)

    # Data first: a bad dataset fails in seconds, before the weights load.
    tokenizer = load_tokenizer(cfg.model.tokenizer or assets.target, cfg.model.trust_remote_code)
    rows = load_run_rows(cfg.data, assets.source, loss.uses_retain)
    idk = load_idk_answers(assets.source, cfg.data.idk_path) if loss.uses_idk else []
    d = cfg.data
    datamodule = UnlearningDataModule(
        rows.forget, rows.retain, idk, tokenizer, PromptFormat.for_model(cfg.model), d.max_length, d.batch_size,
        d.num_workers, d.seed, uses_retain=loss.uses_retain, uses_idk=loss.uses_idk, forget_format=d.forget_format,
        retain_format=d.retain_format)
    data_report = {**datamodule.report(), "forget_in_retain": _overlap(cfg, rows)}

    m = cfg.model
    load_starting_model = partial(build_policy, assets.target, m.dtype, m.trust_remote_code, m.attn_implementation)
    policy = load_starting_model(lora=m.lora)
    loss.trainable_parameters(policy)  # e.g. RMU's loss.layer beyond the model's layers: refused before the run folder
    strategy = build_strategy(cfg.trainer.strategy, policy, m.gradient_checkpointing, cfg.trainer.collective_timeout_s,
                              is_multi_process(cfg.trainer.devices, cfg.trainer.num_nodes))
    if m.gradient_checkpointing and strategy_name(cfg.trainer.strategy) != "fsdp":  # FSDP checkpoints its own layers
        policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if is_launched_rank():  # only global rank 0 creates or writes the run folder
        checkpoint = last_checkpoint(run_dir) if cfg.run.resume else None
    else:
        checkpoint = open_run_directory(cfg, run_dir)
        share_run_dir(run_dir)
    reference = build_reference(loss, cfg.reference.mode, assets.target, datamodule, load_starting_model, policy,
                                cfg.trainer.strategy, m.dtype, cfg.trainer.precision, cfg.run.cache_dir,
                                cfg.reference.batch_size, resuming=checkpoint is not None)
    module = UnlearningModule(policy, loss, reference, cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.warmup_epochs,
                              policy_factory=partial(load_starting_model, lora=m.lora))
    probe_rows = {"forget": rows.forget[:SUMMARY_MAX_ROWS], "retain": rows.retain[:SUMMARY_MAX_ROWS]}
    probe = NLLProbe(tokenizer, {name: r for name, r in probe_rows.items() if r}, PromptFormat.for_model(m),
                     d.max_length)
    evaluation = fit_evaluation(cfg, assets, tokenizer, run_dir)
    trainer = build_trainer(cfg.trainer, cfg.optim, strategy, run_dir, [
        probe, *(evaluation.callbacks if evaluation else []), RNGState(), RunConfig(to_yaml(cfg)),
        LastCheckpoint(run_dir / CHECKPOINT_DIR, cfg.run.checkpoint_every_n_steps)])
    train(trainer, module, datamodule, checkpoint, run_dir, cfg.trainer.collective_timeout_s)

    eval_summary = evaluation.summary() if evaluation else None
    nll_epoch, nll_after = probe.after(eval_summary["selected_epoch"] if eval_summary else None)
    summary = {
        # The user's own files have no forget split: forget_set names the file (else the split).
        "loss": cfg.loss.name, "loss_hparams": loss.hparams(),
        "forget_split": None if cfg.data.source == "files" else cfg.data.forget_split,
        "forget_set": cfg.data.forget_path if cfg.data.source == "files" else cfg.data.forget_split,
        "retain_split": rows.retain_split, "target_model": assets.target, "retain_model": assets.retain,
        "nll_before": probe.before, "nll_after": nll_after, "nll_after_epoch": nll_epoch, "steps": trainer.global_step,
        "epochs": trainer.current_epoch, "seconds": None, "run_dir": str(run_dir), "model_dir": str(run_dir / "model"),
        "evaluation": eval_summary,
        "resumed_from": str(checkpoint) if checkpoint else None, "data": data_report,
    }
    # The selected epoch's weights may already be on disk; otherwise the final ones are saved (gathered
    # onto rank 0 first under a sharding strategy, which takes every rank).
    final = None if evaluation and evaluation.has_selected_weights() else module.whole_policy()
    if trainer.is_global_zero:
        save = partial(save_model, merge_lora=m.lora.merge)
        if evaluation:
            evaluation.write_model(final, tokenizer, run_dir / "model", save)
            summary["evaluation"]["question_ci"] = run_intervals(run_dir, eval_summary["selected_epoch"])
            atomic_write_text(run_dir / "summary.md", format_fit_summary(summary["evaluation"]))
        else:
            save(final, tokenizer, run_dir / "model")
        if cfg.attack.after_fit:
            summary["robustness"] = attack_saved_model(cfg, run_dir, assets)
        if cfg.eval.lm_eval_tasks:  # the harness's own accuracies on the saved model (docs/multiple_choice.md)
            from unlearn.evaluation.lm_eval_bridge import score_model_dir

            summary["lm_eval"] = score_model_dir(run_dir / "model", cfg.eval.lm_eval_tasks, cfg.eval.batch_size,
                                                 model_loader(m), evaluation_device(cfg.trainer.accelerator))
        summary["seconds"] = round(time.time() - start, 1)
        # The run's "finished" marker (sweep and reproduce skip runs that have it): whole or absent.
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2))
        if not cfg.run.keep_checkpoint:  # the model is saved; the optimiser state is only needed to resume
            shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)
        print(format_summary(summary))
    return summary


def attack_saved_model(cfg: Config, run_dir: Path, assets: Assets) -> dict | None:
    """``attack.after_fit``: the attacks on ``<run>/model`` (docs/robustness.md), written as ``attack.json`` and
    ``attack.md`` and appended to ``summary.md``; returns their headline numbers for ``summary.json``."""
    if benchmark_of(cfg.data.source) is not BENCHMARKS["tofu"]:
        log.warning("attack.after_fit: the attacks read TOFU's metrics; data.source=%s is skipped.", cfg.data.source)
        return None
    from unlearn.attacks.job import run_attacks
    from unlearn.attacks.report import format_report, headline

    report = run_attacks(cfg, str(run_dir / "model"), assets.retain, assets.source)
    atomic_write_text(run_dir / "attack.json", json.dumps(report, indent=1))
    text = format_report(report, level=2)
    atomic_write_text(run_dir / "attack.md", text)
    summary_md = run_dir / "summary.md"
    if summary_md.is_file():
        atomic_write_text(summary_md, summary_md.read_text() + "\n" + text)
    return headline(report)


def _overlap(cfg: Config, rows) -> int:
    """Forget rows that also sit in the retain set (question/answer data only), with a warning."""
    if not (cfg.data.forget_format == cfg.data.retain_format == "qa" and rows.retain):
        return 0
    overlap = forget_retain_overlap(rows.forget, rows.retain, set_names(cfg.data))
    if overlap:
        log.warning("%d of %d forget rows also appear in the retain set '%s' (same question and answer): the forget "
                    "and retain terms pull them in opposite directions. Remove them from one of the splits.",
                    overlap, len(rows.forget), rows.retain_split)
    return overlap
