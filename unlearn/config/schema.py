"""Run configuration: the typed schema and its defaults (loading files and overrides: ``unlearn.config.loading``).

The typed defaults describe the built-in run (a generated fictitious-authors benchmark and a
tiny Llama trained on it), so ``python -m unlearn fit`` with no arguments works offline on a
CPU: the learning rate, epochs, β and ``c_rt`` are tuned for the tiny model (docs/builtin.md). The
paper's settings for real models live once, in ``configs/loss/*.yaml`` and
``configs/experiment/tofu_llama2.yaml`` (docs/definitions.md, "Paper settings").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from unlearn.files import atomic_write_text


@dataclass
class BuiltinModelConfig:
    """Shape and fine-tuning budget of the tiny Llama the project trains for its built-in benchmark."""

    vocab_size: int = 1024
    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 256


@dataclass
class LoraConfig:
    """LoRA adapters (``peft``): only they train, and the reference is the network with them off."""

    enabled: bool = False
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: Any = "all-linear"  # or a list of module names, e.g. [q_proj, v_proj]
    merge: bool = True  # save the merged model (loads without peft); false saves the adapters only


@dataclass
class ModelConfig:
    # Model to unlearn (the *target*): a hub id or a local folder. None = the built-in tiny
    # model, fine-tuned on the built-in benchmark on first use and cached.
    path: str | None = None
    # Model trained without the forget set (forget quality compares against it).
    retain_path: str | None = None
    tokenizer: str | None = None  # defaults to `path`
    # plain | tofu_phi | llama2 | chat_template (docs/definitions.md, "Prompt formats")
    prompt_format: str = "plain"
    # Extra variables for the chat template (prompt_format=chat_template), e.g. {date_string: 10 Apr 2025}:
    # Llama-3 templates print today's date without one. Set a whole dict: model.chat_template_kwargs={k: v}.
    chat_template_kwargs: dict[str, Any] | None = None
    dtype: str = "float32"  # float32 | bfloat16 | float16
    attn_implementation: str | None = None  # e.g. sdpa, eager, flash_attention_2
    gradient_checkpointing: bool = False
    trust_remote_code: bool = False
    lora: LoraConfig = field(default_factory=LoraConfig)
    builtin: BuiltinModelConfig = field(default_factory=BuiltinModelConfig)


@dataclass
class BuiltinDataConfig:
    """Size and seed of the generated fictitious-authors benchmark."""

    num_authors: int = 40
    questions_per_author: int = 10
    num_general_facts: int = 40
    forget_percents: list[int] = field(default_factory=lambda: [1, 5, 10])
    seed: int = 0


@dataclass
class ColumnsConfig:
    """``data.source=files``: the user's column names for the project's fields."""

    question: str = "question"
    answer: str = "answer"
    text: str = "text"  # raw documents (data.forget_format=text)


@dataclass
class DataConfig:
    # builtin: the generated benchmark; tofu: TOFU by hub id or local folder (`path`);
    # files: your own forget/retain sets (`forget_path`, `retain_path`; see unlearn/data/custom.py).
    source: str = "builtin"
    path: str | None = None  # tofu: hub id (locuslab/TOFU) or a folder holding TOFU's files
    # files: a JSONL/JSON/CSV/Parquet file, a Dataset.save_to_disk folder or a hub dataset id.
    forget_path: str | None = None
    retain_path: str | None = None
    forget_format: str = "qa"  # qa: question/answer pairs | text: raw documents (plain language modelling)
    retain_format: str = "qa"
    columns: ColumnsConfig = field(default_factory=ColumnsConfig)
    forget_split: str = "forget10"
    retain_split: str | None = None  # None: the complement of forget_split (forget10 -> retain90)
    max_length: int = 128  # prompt + answer tokens; data.source=tofu: 500 unless set (configs/data/tofu.yaml)
    batch_size: int = 8  # per device; the effective batch is batch_size * accumulate * devices
    num_workers: int = 0
    seed: int = 1001  # forget/retain pairing and IDK answers
    idk_path: str | None = None  # refusal answers, one a line (TOFU's idontknow.jsonl); default: beside the data
    builtin: BuiltinDataConfig = field(default_factory=BuiltinDataConfig)


@dataclass
class LossConfig:
    """Loss strategy and its hyperparameters; None means "the strategy's own default".

    A value left at the default below goes only to strategies that take it; a value the user
    changed for a strategy that does not use it is an error, so that a KL coefficient given to
    ``npo_rt`` does not pass silently. ``beta`` and ``c_rt`` default to the built-in run's tuned
    values (docs/builtin.md): on the tiny model the paper's β = 0.1 and c_rt = 1 let the summed
    forget term overwhelm the token-mean retain term. The TOFU experiment configs set the paper's
    values explicitly.
    """

    name: str = "npo_rt"
    beta: float | None = 0.5
    gamma: float | None = None
    c_forget: float | None = None
    c_npo: float | None = None
    c_rt: float | None = 5.0
    c_kl: float | None = None
    kl_mask: str | None = None  # answer | all | padded (docs/definitions.md, "KL masks")
    retain: str | None = None  # none | nll | kl (strategies with an optional retain term)
    idk_mean: str | None = None  # joint | separate (idk: one token mean over IDK + retain, or two)


@dataclass
class ReferenceConfig:
    """Where the frozen reference's numbers come from (see ``unlearn.reference.setup``)."""

    mode: str = "auto"  # auto | cache | model | adapter
    batch_size: int = 32  # rows per forward pass while filling the cache


@dataclass
class OptimConfig:
    lr: float = 2e-4
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0  # linear warm-up, then linear decay to zero (docs/definitions.md, "Optimiser")
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = None


@dataclass
class FinetuneConfig:
    """``python -m unlearn finetune``: teach a model the benchmark before unlearning (TOFU's method).

    The defaults suit the built-in tiny model learning the built-in benchmark by heart; TOFU's
    own fine-tuning of Llama-2-7b used lr 1e-5 for 5 epochs.
    """

    epochs: int = 20
    lr: float = 3e-3
    batch_size: int = 16
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0


@dataclass
class TrainerConfig:
    max_epochs: int = 20
    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    log_every_n_steps: int = 1
    deterministic: bool = False
    enable_progress_bar: bool = True
    # Multi-process runs: a collective operation (all-reduce, barrier, gather) that waits longer than
    # this for the other processes fails with an error naming the run folder and the resume command.
    collective_timeout_s: int = 1800


@dataclass
class RunConfig:
    output_dir: str = "runs"
    name: str | None = None  # default: <loss>_<forget_split>_<timestamp>
    overwrite: bool = False
    seed: int = 1001
    # Built-in models and benchmarks are cached here and reused by later runs.
    cache_dir: str = ".cache/unlearn"
    # Continue the run named run.name from <run>/checkpoints/last.ckpt (`fit --resume`).
    resume: bool = False
    # Besides every epoch end, also checkpoint every N optimiser steps (null: epoch ends only).
    checkpoint_every_n_steps: int | None = None
    # Keep <run>/checkpoints/last.ckpt (weights + optimiser state) after the model is saved.
    keep_checkpoint: bool = False


@dataclass
class EvalConfig:
    """TOFU evaluation during ``fit`` (every ``every_n_epochs`` epochs and before the first) and in ``eval``."""

    enabled: bool = True
    every_n_epochs: int = 1
    max_rows: int | None = None  # first rows of forget/retain only (TOFU's legacy code: 300); None = all
    max_new_tokens: int = 48  # greedy generation cap for ROUGE-L; data.source=tofu: TOFU's 200 unless set
    batch_size: int = 32  # sequences per forward pass (prompts per batch when generating)
    num_logged_samples: int = 4  # generations per evaluation written to TensorBoard
    # Stop once model utility < collapse_fraction x its value before unlearning (or is not finite).
    collapse_fraction: float = 0.5
    selection: str = "forget_quality"  # forget_quality | model_utility | last: the epoch saved as the model


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    run: RunConfig = field(default_factory=RunConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def save_config(cfg: Config, path: str | Path) -> None:
    """Write ``config.yaml`` whole or not at all (a resume compares against it)."""
    atomic_write_text(path, to_yaml(cfg))
