"""Tiny models and tokenizers built in-process for tests."""

from pathlib import Path

from unlearn.models.loading import build_tiny_llama, train_tokenizer

# Test presets (not shipped configs): pass as `--config` / load_config files.
TINY_CONFIG = str(Path(__file__).with_name("configs") / "tiny.yaml")  # tiny built-in model and benchmark
TOFU_LOCAL_CONFIG = str(Path(__file__).with_name("configs") / "tofu_local.yaml")  # data/tofu from ../shared/data/tofu

QA = [
    {"question": f"What is the home city of writer number {i}?", "answer": f"Writer number {i} lives in city {i % 7}."}
    for i in range(24)
]


def tiny_tokenizer(rows=QA, vocab_size=300):
    texts = ["Question: Answer: [INST] [/INST] I don't know."] + [r["question"] + " " + r["answer"] for r in rows]
    return train_tokenizer(texts, vocab_size)


TINY_SIZES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def tiny_model(tokenizer, seed=0, **overrides):
    """The tests' small Llama; ``overrides`` change sizes or other ``LlamaConfig`` fields (``attention_dropout=``)."""
    return build_tiny_llama(tokenizer, seed=seed, **{**TINY_SIZES, **overrides})


def init_gloo(rank: int, world_size: int, port: int) -> None:
    """Join a two-process CPU group in a test worker started by ``torch.multiprocessing.spawn``.

    ``torch.distributed.nn`` is imported first on purpose: its functions take ``group=group.WORLD`` as a
    default argument, evaluated when the module is imported. Imported after the group exists (transformers
    pulls it in when it reads a config), that default keeps the group alive past ``destroy_process_group``
    and its gloo threads abort the worker at exit now and then (SIGABRT, "terminate called without an
    active exception"). The CLI never hits this: Lightning imports the module before any group exists.
    """
    import os

    import torch
    import torch.distributed.nn  # noqa: F401  (see above: before the group, never after)

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world_size)


def build_reference_from(cfg, loss, model_path, datamodule, load_reference_model=None, policy=None):
    """``unlearn.reference.setup.build_reference`` with the settings a run's ``cfg`` gives it."""
    from unlearn.reference.setup import build_reference

    return build_reference(loss, cfg.reference.mode, model_path, datamodule, load_reference_model, policy,
                           cfg.trainer.strategy, cfg.model.dtype, cfg.trainer.precision, cfg.run.cache_dir,
                           cfg.reference.batch_size)
