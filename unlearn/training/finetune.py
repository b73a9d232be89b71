"""``python -m unlearn finetune``: make the *target* and *retain* models (TOFU's method).

The target model learns every question/answer pair of the benchmark (``full``); the retain
model, from the same starting weights, learns all but the forget set (the retain split).
Unlearning starts from the target, and forget quality measures how close the unlearned model's
answers on the forget set come to the retain model's.

On the built-in benchmark the starting point is a freshly built tiny Llama with a tokenizer
trained on the benchmark's own text, and both models are cached under ``run.cache_dir`` so that
later runs reuse them (``models/builtin-<key>``, where the default ``fit`` looks them up). A
user's model (``model.path``) is fine-tuned into ``--out`` or ``models/finetuned-<name>-<key>``,
never into the built-in folder: each key identifies what was trained (the starting model's files
or hub revision, the benchmark's files, the fine-tuning settings), and the folder records it in
``finetune.json`` so that models trained from something else are never taken for these
(:mod:`unlearn.training.model_cache`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import lightning as L
import torch

from unlearn.config.schema import Config
from unlearn.data.formatting import PromptFormat
from unlearn.data.sources import is_local, load_split, retain_split_for
from unlearn.errors import ConfigError, ModelLoadError
from unlearn.files import atomic_folder, check_writable
from unlearn.models.context import check_context_length
from unlearn.models.loading import build_tiny_llama, load_tokenizer, train_tokenizer
from unlearn.models.policy import build_policy
from unlearn.models.saving import save_pretrained_atomic
from unlearn.training.model_cache import builtin_model_dir, claim, finetuned_model_dir, scratch_model_dir
from unlearn.training.sft import train_on_rows

log = logging.getLogger(__name__)
GENERAL_SPLITS = ("real_authors_perturbed", "world_facts_perturbed")


def benchmark_texts(source: Path) -> list[str]:
    """Every string of a benchmark folder, for training the built-in tokenizer.

    The holdout authors' texts are included: a tokenizer that never saw them splits their names into
    rarer, longer pieces, so a model that never saw them either still finds them less likely than the
    forget authors, and membership inference tells the two apart from the tokenizer alone (the retain
    model's LOSS AUC was 0.97 without them, 0.65 with them; docs/results.md). A pretrained tokenizer has
    seen text like both; so must ours.
    """
    texts = ["Question: Answer: [INST] [/INST]"]
    for path in sorted(source.glob("*.json*")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                texts.append(line)  # idontknow.jsonl is plain text, one sentence a line
                continue
            texts.extend(v if isinstance(v, str) else " ".join(v) for v in row.values() if isinstance(v, (str, list)))
    return texts


def finetune_rows(source: Path, split: str, builtin: bool) -> list[dict]:
    """Rows to fine-tune on: ``split``, plus the general-knowledge splits for a model trained from scratch.

    The built-in model has no pretraining, so it learns the "real authors" and "world facts"
    that model utility is measured on together with the fictitious authors (their perturbed files,
    which hold the same questions and answers; TOFU's too, when ``model.from_scratch`` trains on it).
    """
    rows = [{"question": r["question"], "answer": r["answer"]} for r in load_split(source, split)]
    if builtin:
        for name in GENERAL_SPLITS:
            rows += [{"question": r["question"], "answer": r["answer"]} for r in load_split(source, name)]
    return rows


def check_finetune_inputs(cfg: Config, out: str | Path | None = None) -> None:
    """What ``finetune`` writes to and reads first, checked before any model loads.

    Raises:
        ConfigError: ``--out`` or ``run.cache_dir`` is a file, or not writable.
        DataError: the forget split is not in a local TOFU folder (named as such, not as its
            derived retain split ``retain93``, and before the target model is trained).
    """
    if out is not None and cfg.model.path is not None:  # --out is ignored without model.path
        check_writable(out, "--out")
    check_writable(cfg.run.cache_dir, "run.cache_dir")
    check_forget_split(cfg, cfg.data.path)


def check_forget_split(cfg: Config, source: Path | str | None) -> None:
    """``cfg.data.forget_split`` exists in a local TOFU folder ``source``, as ``fit`` reads it first."""
    if cfg.data.source == "tofu" and source is not None and is_local(source):
        load_split(source, cfg.data.forget_split)


def check_starting_model(cfg: Config) -> None:
    """``model.path`` (a user's model to fine-tune) must exist: checked before anything else runs.

    Raises:
        ModelLoadError: a local path that does not exist or is a file, or a tokenizer that cannot be loaded.
        ConfigError: ``data.max_length`` is longer than the model's context (``max_position_embeddings``).
    """
    path = cfg.model.path
    local = Path(path).expanduser()
    if not local.exists() and (path.startswith(("/", ".", "~")) or path.count("/") > 1):
        raise ModelLoadError(f"model.path={path}: no such folder (and not a Hugging Face hub id, which has the form "
                             "org/name). Give the folder of the model to fine-tune.")
    if local.is_file():
        raise ModelLoadError(f"model.path={path}: it is a file, not a model folder. Give the folder the model was "
                             "saved to (save_pretrained: config.json, weights, tokenizer files), or a hub id.")
    load_tokenizer(cfg.model.tokenizer or path, cfg.model.trust_remote_code)  # a hub id that cannot be reached fails
    check_context_length([path], cfg.data.max_length, cfg.model.trust_remote_code)


def builtin_tokenizer(tok_dir: Path, texts, vocab_size: int):
    """The tokenizer in ``tok_dir``, trained on ``texts()`` and saved there first if it is not yet."""
    if not tok_dir.is_dir():  # written whole or not at all: a folder that exists is complete
        try:
            with atomic_folder(tok_dir) as tmp:
                train_tokenizer(texts(), vocab_size).save_pretrained(tmp)
        except FileExistsError:  # another process wrote it meanwhile; the same texts give the same tokenizer
            pass
    return load_tokenizer(str(tok_dir))


def fresh_tiny_llama(cfg: Config, tokenizer):
    """The built-in tiny Llama (``model.builtin.*``), freshly initialised from ``run.seed``."""
    b = cfg.model.builtin
    return build_tiny_llama(tokenizer, b.hidden_size, b.num_hidden_layers, b.num_attention_heads, b.intermediate_size,
                            max_position_embeddings=max(512, cfg.data.max_length), seed=cfg.run.seed)


def finetune(cfg: Config, source: Path, out_dir: Path | None = None, builtin: bool = True) -> dict[str, Path]:
    """Train (or reuse) the target and retain models for ``cfg.data.forget_split``.

    Args:
        source: folder of the benchmark's files.
        out_dir: where the models go; defaults to :func:`builtin_model_dir` for the built-in model and
            to :func:`finetuned_model_dir` for ``cfg.model.path``.
        builtin: start from a fresh tiny Llama (the built-in benchmark, or TOFU-format data with
            ``model.from_scratch``); otherwise from ``cfg.model.path``.

    Returns:
        ``{"target": path, "retain": path}``; existing models there are reused, never overwritten.

    Raises:
        RunFolderError: ``out_dir`` holds models trained from another model, data or settings.
        ConfigError: a MUSE or multiple-choice source: its models are trained by :mod:`unlearn.training.assets`
            or given.
    """
    if cfg.data.source in ("muse", "muse_builtin", "wmdp", "hazard_builtin"):
        raise ConfigError("finetune trains on TOFU-format question/answer splits; MUSE publishes its models "
                          "(model.path=muse-bench/MUSE-news_target model.retain_path=muse-bench/MUSE-news_retrain), "
                          "WMDP unlearns your own (model.path=...), and data.source=muse_builtin or hazard_builtin "
                          "without model.path trains its own.")
    if builtin and cfg.data.source == "tofu":  # model.from_scratch: the built-in architecture on this data
        out_dir = Path(out_dir) if out_dir else scratch_model_dir(cfg, source)
    elif builtin:
        out_dir = Path(out_dir) if out_dir else builtin_model_dir(cfg)
    else:
        out_dir = Path(out_dir).expanduser() if out_dir else finetuned_model_dir(cfg, source)
    retain_split = cfg.data.retain_split or retain_split_for(cfg.data.forget_split)
    paths = {"target": out_dir / "target", "retain": out_dir / retain_split}
    jobs = {"target": "full", "retain": retain_split}
    if not builtin:
        check_forget_split(cfg, source)
        out_dir.mkdir(parents=True, exist_ok=True)
        claim(out_dir, cfg, source, list(paths.values()))
    if all(p.is_dir() for p in paths.values()):
        return paths
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    if builtin:
        texts = lambda: benchmark_texts(source)  # noqa: E731 (read only when the tokenizer is not cached)
        tokenizer = builtin_tokenizer(out_dir / "tokenizer", texts, cfg.model.builtin.vocab_size)
    else:
        tokenizer = load_tokenizer(cfg.model.tokenizer or cfg.model.path, cfg.model.trust_remote_code)
    for role, split in jobs.items():
        if paths[role].is_dir():
            continue
        L.seed_everything(cfg.run.seed, verbose=False)
        if builtin:
            model = fresh_tiny_llama(cfg, tokenizer)
        else:
            model = build_policy(cfg.model.path, cfg.model.dtype, cfg.model.trust_remote_code,
                                 cfg.model.attn_implementation)
        model = train_on_rows(model, tokenizer, finetune_rows(source, split, builtin),
                              PromptFormat.for_model(cfg.model), cfg.data.max_length, cfg.finetune,
                              cfg.trainer.accelerator, cfg.trainer.precision, cfg.trainer.enable_progress_bar,
                              desc=role)
        save_pretrained_atomic(model, tokenizer, paths[role])
        del model
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    log.info("Target and retain models ready in %s (%.0f s)", out_dir, time.time() - start)
    return paths
