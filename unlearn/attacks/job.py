"""``python -m unlearn attack``: relearning, quantisation and paraphrase attacks on a model, as evaluations.

Each attack is a transformation applied alike to the model under test and to the retain model,
evaluated with TOFU's metrics before and after (:mod:`unlearn.attacks.report` says what is
reported). :func:`run_attacks` computes the report without writing anything (``fit`` can call it);
:func:`attack` is the command: it resolves the models as ``eval`` does and writes ``attack.json``
and ``attack.md`` beside the run (``<run>/`` for ``model.path=<run>/model``) or into an output folder.

Models are always loaded afresh from their folders and changed in memory only; nothing is ever
written into a model's folder.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from unlearn.attacks.paraphrase import paraphrased_splits
from unlearn.attacks.quantize import quantize_model_
from unlearn.attacks.relearn import (TOFU_ROWS_PER_AUTHOR, read_relearn_file, relearn_, relearn_examples,
                                     split_forget_rows)
from unlearn.attacks.report import attack_entry, format_report
from unlearn.config.schema import ATTACK_NAMES, AttackConfig, Config, RunConfig
from unlearn.data.formatting import PromptFormat
from unlearn.errors import ConfigError, RunFolderError
from unlearn.evaluation import TofuEvaluator, load_eval_splits
from unlearn.evaluation.job import (check_not_a_run_folder, evaluate_model, evaluation_device, make_output_folder,
                                    model_loader, output_folder, retain_results)
from unlearn.files import atomic_write_text, check_writable
from unlearn.models.loading import load_tokenizer
from unlearn.names import is_tofu_log
from unlearn.training.assets import resolve_assets

log = logging.getLogger(__name__)
OUTPUTS = ("attack.json", "attack.md")


def attack_names(settings: AttackConfig) -> list[str]:
    """The attacks to run: ``attack.names`` when set, else ``attack.name`` (``all``: every attack)."""
    if settings.names:
        return list(settings.names)
    return list(ATTACK_NAMES) if settings.name == "all" else [settings.name]


@dataclass
class Session:
    """What every attack shares: the run's settings, the two models, the tokenizer and the evaluation splits."""

    cfg: Config
    model_path: str
    retain_path: str | None
    tokenizer: object
    splits: dict[str, list[dict]]  # the four evaluation splits, the forget split whole
    device: object  # torch.device
    load: Callable[[str], object]  # path -> a fresh model (evaluation.job.model_loader)
    _standard: tuple | None = field(default=None, repr=False)

    def capped(self, forget: list[dict]) -> dict[str, list[dict]]:
        """The evaluation splits with ``forget`` as the forget split, forget and retain cut to ``eval.max_rows``."""
        cap = self.cfg.eval.max_rows
        return {**self.splits, "forget": forget[:cap] if cap else forget,
                "retain": self.splits["retain"][:cap] if cap else self.splits["retain"]}

    def evaluator(self, splits: dict[str, list[dict]]) -> TofuEvaluator:
        e = self.cfg.eval
        return TofuEvaluator(self.tokenizer, splits, prompt_format=PromptFormat.for_model(self.cfg.model),
                             max_length=self.cfg.data.max_length, max_new_tokens=e.max_new_tokens,
                             batch_size=e.batch_size)

    def before(self, evaluator: TofuEvaluator):
        """The model's and the retain model's results without any attack (the retain model's from the store)."""
        retain = retain_results(self.retain_path, evaluator, self.device, self.cfg.run.cache_dir, self.cfg.model.dtype,
                                self.load)
        model = evaluate_model(self.load, self.model_path, evaluator, self.device).compare_with_retain(retain)
        return model, retain

    def standard(self):
        """:meth:`before` on the whole forget split, computed once for every attack that starts from it."""
        if self._standard is None:
            evaluator = self.evaluator(self.capped(self.splits["forget"]))
            self._standard = (evaluator, *self.before(evaluator))
        return self._standard

    def after(self, evaluator: TofuEvaluator, transform: Callable, retain_before, retain_from_store: bool = False):
        """Both models loaded afresh, transformed, evaluated; forget quality against the retain model attacked alike."""
        load = lambda path: transform(self.load(path))  # noqa: E731: a fresh copy each time, changed in memory
        retain = None
        if self.retain_path is not None:
            retain = (retain_results(self.retain_path, evaluator, self.device, self.cfg.run.cache_dir,
                                     self.cfg.model.dtype, self.load) if retain_from_store
                      else evaluate_model(load, self.retain_path, evaluator, self.device))
        model = evaluate_model(load, self.model_path, evaluator, self.device).compare_with_retain(retain)
        if retain is not None:
            retain.compare_with_retain(retain_before)  # how far the attack alone moves the retain model
        return model, retain


def _entry(description: str, settings: dict, before: tuple, after: tuple, **extra) -> dict:
    """:func:`attack_entry` from the ``(model, retain)`` results before and after the attack."""
    (model_before, retain_before), (model_after, retain_after) = before, after
    return attack_entry(description, settings, model_before.summary(), model_after.summary(),
                        None if retain_before is None else retain_before.summary(),
                        None if retain_after is None else retain_after.summary(), **extra)


def _quantize(s: Session) -> dict:
    q = s.cfg.attack.quantize
    evaluator, model_before, retain_before = s.standard()

    def transform(model):
        quantize_model_(model.to(s.device), q.bits, q.group_size, q.symmetric, q.include_head)
        return model

    model_after, retain_after = s.after(evaluator, transform, retain_before)
    kind = "symmetric" if q.symmetric else "asymmetric"
    description = (f"Linear weights rounded to {q.bits} bits, {kind}, groups of {q.group_size or 'a whole row'} "
                   f"(output head {'included' if q.include_head else 'kept'}); whole forget split")
    return _entry(description, {"bits": q.bits, "group_size": q.group_size, "symmetric": q.symmetric,
                                "include_head": q.include_head},
                  (model_before, retain_before), (model_after, retain_after))


def _paraphrase(s: Session) -> dict:
    _, model_before, retain_before = s.standard()
    forget = paraphrased_splits(s.splits, f"the forget split ({s.cfg.data.forget_split}_perturbed)")["forget"]
    model_after, retain_after = s.after(s.evaluator(s.capped(forget)), lambda model: model, retain_before,
                                        retain_from_store=True)
    return _entry("Forget questions replaced by their paraphrased_question; answers unchanged", {},
                  (model_before, retain_before), (model_after, retain_after))


def author_rows(cfg: Config) -> int:
    """Rows per author of the forget split: ``attack.relearn.author_rows``, else TOFU's 20 or the built-in setting."""
    if cfg.attack.relearn.author_rows is not None:
        return cfg.attack.relearn.author_rows
    return cfg.data.builtin.questions_per_author if cfg.data.source == "builtin" else TOFU_ROWS_PER_AUTHOR


def _relearn(s: Session) -> dict:
    r, cfg = s.cfg.attack.relearn, s.cfg
    forget, extra = s.splits["forget"], {}
    if r.data_path is not None:  # the attacker's own data: the whole forget split is held out
        rows = read_relearn_file(r.data_path, r.data_format, vars(cfg.data.columns))
        evaluator, model_before, retain_before = s.standard()
        what = f"{len(rows)} {'documents' if r.data_format == 'text' else 'rows'} of {r.data_path}"
    else:
        split = split_forget_rows(len(forget), r.fraction, cfg.run.seed, r.unit, author_rows(cfg))
        rows, held_out = [forget[i] for i in split.attack], [forget[i] for i in split.held_out]
        evaluator = s.evaluator(s.capped(held_out))
        model_before, retain_before = s.before(evaluator)
        units = len(split.attack) // split.block
        what = f"{units} of {len(forget) // split.block} forget {split.unit}s ({len(rows)} rows)"
        extra["split"] = split.to_dict()
    examples = relearn_examples(rows, s.tokenizer, PromptFormat.for_model(cfg.model), cfg.data.max_length,
                                r.data_format if r.data_path else "qa")
    lr = r.lr if r.lr is not None else cfg.optim.lr  # the unlearning rate: the attacker matches its budget

    def transform(model):
        if r.lora:
            from unlearn.models.lora import apply_lora

            lora = cfg.model.lora
            model = apply_lora(model, lora.r, lora.alpha, lora.dropout, lora.target_modules)
        return relearn_(model, examples, s.tokenizer.pad_token_id, r.steps, lr, r.batch_size, cfg.finetune.weight_decay,
                        r.warmup, cfg.run.seed, cfg.trainer.accelerator, cfg.trainer.precision,
                        cfg.trainer.enable_progress_bar)

    model_after, retain_after = s.after(evaluator, transform, retain_before)
    settings = {"steps": r.steps, "lr": lr, "batch_size": r.batch_size, "warmup": r.warmup, "lora": r.lora,
                "fraction": r.fraction, "unit": r.unit, "data_path": r.data_path, "seed": cfg.run.seed}
    evaluated = len(evaluator.splits["forget"])  # the held-out rows, cut to eval.max_rows
    description = (f"Fine-tuned on {what} for {r.steps} steps of {r.batch_size} at lr {lr:g}"
                   f"{' (LoRA)' if r.lora else ''}; forget metrics on {evaluated} held-out rows")
    return _entry(description, settings, (model_before, retain_before), (model_after, retain_after),
                  held_out_rows=evaluated, **extra)


ATTACKS: dict[str, Callable[[Session], dict]] = {"relearn": _relearn, "quantize": _quantize, "paraphrase": _paraphrase}


def run_attacks(cfg: Config, model_path: str, retain_path: str | None, source, names: list[str] | None = None) -> dict:
    """Run the attacks ``names`` (default: ``attack.*``) on ``model_path``, with ``retain_path`` as the baseline.

    Nothing is written (the retain model's plain results go to the store under ``run.cache_dir``, as in ``eval``).

    Returns:
        What ``attack.json`` holds: ``model``, ``retain_model``, ``forget_split`` and ``attacks``
        (name -> :func:`unlearn.attacks.report.attack_entry`).
    """
    names = names or attack_names(cfg.attack)
    retain_path = retain_path if cfg.attack.retain_baseline else None
    if is_tofu_log(retain_path):  # a stored log cannot be attacked: its model is not here to quantise or relearn
        log.warning("model.retain_path=%s is a TOFU evaluation log, not a model: the attacks run without the retain "
                    "baseline (as with attack.retain_baseline=false).", retain_path)
        retain_path = None
    tokenizer = load_tokenizer(cfg.model.tokenizer or model_path, cfg.model.trust_remote_code)
    session = Session(cfg, str(model_path), None if retain_path is None else str(retain_path), tokenizer,
                      load_eval_splits(source, cfg.data.forget_split, None),
                      evaluation_device(cfg.trainer.accelerator), model_loader(cfg.model))
    report = {"model": str(model_path), "retain_model": session.retain_path, "forget_split": cfg.data.forget_split,
              "attacks": {}}
    for name in names:
        log.info("Attack %s on %s", name, model_path)
        report["attacks"][name] = ATTACKS[name](session)
    return report


def attack_folder(run: RunConfig, model_path: str, out: str | Path | None) -> tuple[Path, bool]:
    """Where ``attack.json`` goes, and whether it is a run's folder (kept) rather than a folder of its own.

    ``--out``; else ``<run>`` for a run's model ``<run>/model`` (beside its ``config.yaml``); else
    ``<run.output_dir>/attack_<run.name or model folder name>``. Existing results need ``run.overwrite=true``.

    Raises:
        RunFolderError: results already there without ``run.overwrite=true``.
    """
    path = Path(str(model_path).rstrip("/")).expanduser()
    if out is None and path.name == "model" and (path.parent / "config.yaml").is_file():
        present = [name for name in OUTPUTS if (path.parent / name).exists()]
        if present and not run.overwrite:
            raise RunFolderError(f"{path.parent} already holds {', '.join(present)}. Pass run.overwrite=true to "
                                 "replace them (only those files), or --out DIR to write elsewhere.")
        check_writable(path.parent, "the run folder")
        return path.parent, True
    if out is None:
        name = run.name or (path.parent.name if path.name == "model" and path.parent.name else path.name)
        safe = re.sub(r"[^\w.-]+", "_", name or "model")
        out = Path(run.output_dir).expanduser() / f"attack_{safe}"
    return output_folder(run, model_path, out), False


def attack(cfg: Config, out: str | Path | None = None) -> dict:
    """The ``attack`` command: resolve the models as ``eval`` does, run the attacks, write ``attack.json``/``.md``.

    Returns:
        The report written to ``attack.json``.
    """
    if cfg.data.source not in ("builtin", "tofu"):
        raise ConfigError(f"python -m unlearn attack measures TOFU's forget metrics, which data.source="
                          f"{cfg.data.source} does not have. Use data.source=tofu (with data.path) or the built-in "
                          "benchmark.")
    check_not_a_run_folder(cfg.model.path)
    check_writable(cfg.run.cache_dir, "run.cache_dir")
    assets = resolve_assets(cfg)
    model_path, retain_path = str(assets.target), cfg.model.retain_path or assets.retain
    if retain_path is None and cfg.data.source == "builtin":  # the built-in retain model, as eval finds it
        retain_path = resolve_assets(replace(cfg, model=replace(cfg.model, path=None))).retain
    folder, is_run = attack_folder(cfg.run, model_path, out)

    report = run_attacks(cfg, model_path, retain_path, assets.source)
    if not is_run:
        folder = make_output_folder(folder, cfg.run.overwrite)  # only now: a failed attack leaves no folder
    atomic_write_text(folder / "attack.json", json.dumps(report, indent=1))
    atomic_write_text(folder / "attack.md", format_report(report))
    print(format_report(report))
    print(f"Wrote {folder / 'attack.json'} and {folder / 'attack.md'}")
    return report
