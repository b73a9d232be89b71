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

from unlearn.config.loss import LossConfig  # noqa: F401 (the loss section, kept in its own module)
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
    # No model.path on TOFU-format data (a local folder): train the built-in architecture (model.builtin.*) from
    # scratch, with a tokenizer trained on that data, into target and retain models (cached like the built-in ones).
    from_scratch: bool = False
    # Model trained without the forget set (forget quality compares against it).
    retain_path: str | None = None
    tokenizer: str | None = None  # defaults to `path`
    # plain | tofu_phi | llama2 | chat_template (docs/definitions.md, "Prompt formats")
    prompt_format: str = "plain"
    # Extra variables for the chat template (prompt_format=chat_template), e.g. {date_string: 10 Apr 2025}:
    # Llama-3 templates print today's date without one. Set a whole dict: model.chat_template_kwargs={k: v}.
    chat_template_kwargs: dict[str, Any] | None = None
    system_prompt: str | None = None  # chat_template only: a system turn before each question
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
class MuseBuiltinDataConfig:
    """Size and seed of the generated MUSE-format news benchmark (``data.source=muse_builtin``).

    See unlearn/data/muse_synthetic.py; the defaults let the built-in tiny Llama learn it in minutes on a CPU.
    """

    forget_articles: int = 16
    retain1_articles: int = 16  # the retain set unlearning uses (data.retain_split=retain1)
    retain2_articles: int = 16  # trained on; their questions and texts measure utility and privacy leakage
    holdout_articles: int = 16  # never trained on: PrivLeak's non-members
    questions_per_article: int = 2  # KnowMem questions about each forget and retain2 article (at most 3)
    icl_examples: int = 3  # in-context pairs of each KnowMem prompt (MUSE: 10)
    seed: int = 0


@dataclass
class HazardBuiltinDataConfig:
    """Size and seed of the generated WMDP stand-in (``data.source=hazard_builtin``; unlearn/data/hazard_synthetic.py)."""

    num_hazard_entities: int = 24  # invented agents and compounds (the forget domain), 5 facts each
    num_general_entities: int = 24  # invented towns and musicians (general knowledge), 4 facts each
    train_questions_per_fact: int = 3  # fine-tuning questions per fact (1-4); the evaluated ones are held out
    documents_per_entity: int = 2  # corpus documents per entity (the forget and retain text)
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
    # files: your own forget/retain sets (`forget_path`, `retain_path`; see unlearn/data/custom.py);
    # muse: MUSE by hub id or local folder (`path`; unlearn/data/muse.py); muse_builtin: the generated
    # MUSE-format news benchmark (unlearn/data/muse_synthetic.py); wmdp: WMDP-style multiple choice by hub id
    # or folder (`path`, config `forget_split`; unlearn/data/wmdp.py); hazard_builtin: its generated stand-in.
    source: str = "builtin"
    # tofu: hub id (locuslab/TOFU) or a folder holding TOFU's files; muse: muse-bench/MUSE-News,
    # muse-bench/MUSE-Books or a folder of <config>/<split>.json files
    path: str | None = None
    # files: a JSONL/JSON/CSV/Parquet file, a Dataset.save_to_disk folder or a hub dataset id.
    forget_path: str | None = None
    retain_path: str | None = None
    forget_format: str = "qa"  # qa: question/answer pairs | text: raw documents (plain language modelling)
    retain_format: str = "qa"
    columns: ColumnsConfig = field(default_factory=ColumnsConfig)
    forget_split: str = "forget10"  # MUSE: a split of its raw config (forget)
    retain_split: str | None = None  # None: the complement of forget_split (forget10 -> retain90); MUSE: retain1
    max_length: int = 128  # prompt + answer tokens; data.source=tofu: 500 unless set (configs/data/tofu.yaml)
    batch_size: int = 8  # per device; the effective batch is batch_size * accumulate * devices
    num_workers: int = 0
    seed: int = 1001  # forget/retain pairing and IDK answers
    idk_path: str | None = None  # refusal answers, one a line (TOFU's idontknow.jsonl); default: beside the data
    builtin: BuiltinDataConfig = field(default_factory=BuiltinDataConfig)
    muse_builtin: MuseBuiltinDataConfig = field(default_factory=MuseBuiltinDataConfig)
    hazard_builtin: HazardBuiltinDataConfig = field(default_factory=HazardBuiltinDataConfig)


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
    """The benchmark's evaluation during ``fit`` (every ``every_n_epochs`` epochs and before the first) and in ``eval``."""

    enabled: bool = True
    every_n_epochs: int = 1
    max_rows: int | None = None  # first rows of forget/retain only (TOFU's legacy code: 300); None = all
    max_new_tokens: int = 48  # greedy generation cap for ROUGE-L; data.source=tofu: TOFU's 200 unless set
    batch_size: int = 32  # sequences per forward pass (prompts per batch when generating)
    num_logged_samples: int = 4  # generations per evaluation written to TensorBoard
    # Stop once model utility < collapse_fraction x its value before unlearning (or is not finite).
    collapse_fraction: float = 0.5
    selection: str = "forget_quality"  # forget_quality | model_utility | last: the epoch saved as the model
    # Membership-inference attacks (forget vs holdout texts; docs/evaluation.md, "Privacy"); [] turns them off.
    # reference needs a retain model. gradnorm (add it to the list) takes one backward pass per text: it more than
    # doubles the built-in run's time, so it is not on by default.
    mia_attacks: list[str] = field(default_factory=lambda: ["loss", "zlib", "min_k", "min_k_plus_plus", "reference"])
    mia_k: float = 0.4  # Min-K% and Min-K%++: the fraction of lowest-scoring tokens averaged (MUSE and open-unlearning: 0.4)
    # Multiple choice (wmdp, hazard_builtin): letters (WMDP's lm-eval prompt) | cloze (the choices' own texts).
    choice_style: str = "letters"
    # lm-eval task names (e.g. [wmdp_bio, mmlu]) scored by the harness on fit's saved model; needs `pip install lm-eval`.
    lm_eval_tasks: list[str] = field(default_factory=list)


ATTACK_NAMES = ("relearn", "quantize", "paraphrase")  # python -m unlearn attack (docs/robustness.md)


@dataclass
class RelearnAttackConfig:
    """``attack.relearn``: fine-tune on part of the forget set, measure the held-out rest (unlearn.attacks.relearn)."""

    fraction: float = 0.1  # share of the forget set's authors (or questions) the attacker trains on
    unit: str = "author"  # author: whole authors on each side | question: single rows
    author_rows: int | None = None  # rows per author; None: 20 on TOFU, data.builtin.questions_per_author built-in
    steps: int = 20  # optimiser steps (the attacker's rows repeat as needed)
    lr: float | None = None  # None: optim.lr, the rate the model was unlearned with
    batch_size: int = 8
    warmup: float = 0.0  # linear warm-up over this fraction of the steps, then linear decay
    lora: bool = False  # train LoRA adapters (model.lora.r, alpha, ...) instead of every weight
    # The attacker's own data instead of part of the forget set (then all forget rows are held out).
    data_path: str | None = None
    data_format: str = "qa"  # qa | text (documents), columns named by data.columns


@dataclass
class QuantizeAttackConfig:
    """``attack.quantize``: group-wise round-to-nearest weight quantisation (unlearn.attacks.quantize)."""

    bits: int = 4
    group_size: int = 128  # weights per scale along each row; 0: one scale per row
    symmetric: bool = False  # false: a zero point per group (AWQ/GPTQ's default)
    include_head: bool = False  # also round the output head (tied to the input embeddings in many models)


@dataclass
class AttackConfig:
    """``python -m unlearn attack``: attacks that test whether forgotten knowledge comes back."""

    name: str = "all"  # relearn | quantize | paraphrase | all
    names: list[str] | None = None  # several at once, e.g. attack.names=[relearn,quantize]; set it instead of name
    retain_baseline: bool = True  # apply each attack to the retain model too (the baseline of every difference)
    # fit: attack the saved model once the run ends (attack.json beside summary.json, a section in summary.md).
    after_fit: bool = False
    relearn: RelearnAttackConfig = field(default_factory=RelearnAttackConfig)
    quantize: QuantizeAttackConfig = field(default_factory=QuantizeAttackConfig)


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
    attack: AttackConfig = field(default_factory=AttackConfig)


def to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def save_config(cfg: Config, path: str | Path) -> None:
    """Write ``config.yaml`` whole or not at all (a resume compares against it)."""
    atomic_write_text(path, to_yaml(cfg))
