"""Sharded training: the FSDP strategy for a causal LM, and whole weights when something needs them.

Under DDP (and DeepSpeed ZeRO-1/2) every rank holds the whole policy and nothing here does anything.
Under FSDP (and ZeRO-3) each rank holds a shard of every weight; the wrapped forward gathers one
decoder layer at a time, collectively, so every rank must run the same forwards in the same order.
Training does. Evaluation, the NLL probe and the reference log-prob cache do not: each rank scores
and generates for its own share of the questions, and generation lengths differ between ranks.
They run inside :func:`whole_weights`, where every rank gathers the whole policy once and then
runs its forwards with no collective at all. That costs one whole copy of the weights per device
while it lasts (Llama-2-7b in bf16: 13.5 GB, docs/distributed.md).

Saving gathers a full state dict onto global rank 0 and loads it into a CPU copy of the policy
built from the starting model (:meth:`UnlearningModule.whole_policy`), so the usual writer (LoRA
merge, safetensors, atomic rename) sees an ordinary model whatever the strategy.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import Iterator
from datetime import timedelta

import torch

from unlearn.errors import ConfigError
from unlearn.training.distributed import strategy_name

log = logging.getLogger(__name__)
# Lightning's registered FSDP names; cpu_offload keeps the sharded weights and optimiser state in host memory.
FSDP_STRATEGIES = {"fsdp": False, "fsdp_cpu_offload": True}


def decoder_layer_classes(model) -> set[type]:
    """The classes of ``model``'s repeated blocks: the units FSDP shards and checkpointing recomputes.

    Hugging Face models name them in ``_no_split_modules`` (``LlamaDecoderLayer``, ``Qwen2DecoderLayer``, ...).
    """
    names = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or ())
    return {type(m) for m in model.modules() if type(m).__name__ in names}


def build_strategy(name: str, policy, gradient_checkpointing: bool = False, timeout_s: float = 1800,
                   multi_process: bool = False):
    """``trainer.strategy`` as the Trainer takes it: a strategy object for multi-process runs, else the name.

    Every DDP, FSDP and DeepSpeed strategy gets ``timeout_s`` as its process-group timeout, so a
    collective that some rank never joins fails after that long instead of waiting forever.
    ``"auto"`` becomes DDP when the run asks for several processes (``multi_process``), which is
    what Lightning would choose, so that the timeout applies there too.

    Lightning's plain ``"fsdp"`` wraps the whole model as one unit, so every forward would gather
    every weight at once; wrapping each decoder layer keeps one layer whole at a time. With
    ``gradient_checkpointing`` the same layers are checkpointed by the strategy (Hugging Face's own
    checkpointing is not switched on as well).

    Raises:
        ConfigError: an FSDP variant Lightning does not have, or a model with no known decoder layer.
    """
    if name == "auto" and multi_process:
        name = "ddp"
    timeout = {"timeout": timedelta(seconds=timeout_s)}
    if strategy_name(name) != "fsdp":
        return _registered_strategy(name, timeout)
    if name not in FSDP_STRATEGIES:
        raise ConfigError(f"trainer.strategy={name} is not an FSDP strategy Lightning knows; use one of "
                          f"{', '.join(FSDP_STRATEGIES)}.")
    layers = decoder_layer_classes(policy)
    if not layers:
        raise ConfigError(f"trainer.strategy={name}: {type(policy).__name__} declares no decoder layer class "
                          "(_no_split_modules) to shard by. Use trainer.strategy=ddp or deepspeed_stage_3.")
    return _layerwise_fsdp_class()(auto_wrap_policy=layers, activation_checkpointing_policy=layers if gradient_checkpointing
                        else None, cpu_offload=FSDP_STRATEGIES[name], state_dict_type="full", **timeout)


@functools.cache
def _layerwise_fsdp_class():
    """Lightning's FSDP strategy, able to run on CPU processes (gloo) as well as on GPUs.

    Lightning refuses FSDP without a GPU (it checks for its exact class, which this subclass is
    not), passes torch's FSDP no device on a CPU (torch then looks for a GPU), and takes full state
    dicts with ``offload_to_cpu=True``, which torch's FSDP cannot do for tensors already on the
    CPU. On a CPU each of these is done the way torch needs; on a GPU everything is Lightning's.
    A CPU run is slow but shards, gathers and saves exactly as a GPU run does, so a laptop or CI
    can run ``trainer.strategy=fsdp``.
    """
    import lightning.pytorch.strategies.fsdp as lightning_fsdp
    from lightning.pytorch.strategies import FSDPStrategy
    from torch.distributed.fsdp import (FullOptimStateDictConfig, FullStateDictConfig, FullyShardedDataParallel,
                                        StateDictType)

    def cpu_state_dict_context(module, world_size, rank0_only=True):
        del world_size  # same signature as Lightning's helper
        return FullyShardedDataParallel.state_dict_type(
            module, StateDictType.FULL_STATE_DICT, FullStateDictConfig(offload_to_cpu=False, rank0_only=rank0_only),
            FullOptimStateDictConfig(offload_to_cpu=False, rank0_only=rank0_only))

    class LayerwiseFSDPStrategy(FSDPStrategy):
        @contextlib.contextmanager
        def _full_state_dicts_in_place(self) -> Iterator[None]:
            if self.root_device.type != "cpu":
                yield
                return
            original = lightning_fsdp._get_full_state_dict_context
            lightning_fsdp._get_full_state_dict_context = cpu_state_dict_context
            try:
                yield
            finally:
                lightning_fsdp._get_full_state_dict_context = original

        def _setup_model(self, model):
            if self.root_device.type != "cpu" or any(isinstance(m, FullyShardedDataParallel) for m in model.modules()):
                return super()._setup_model(model)
            model = FullyShardedDataParallel(module=model, cpu_offload=self.cpu_offload,
                                             mixed_precision=self.mixed_precision_config,
                                             sharding_strategy=self.sharding_strategy, device_id=torch.device("cpu"),
                                             **self.kwargs)
            lightning_fsdp._setup_activation_checkpointing(model, self._activation_checkpointing_kwargs)
            return model

        def lightning_module_state_dict(self):
            with self._full_state_dicts_in_place():
                return super().lightning_module_state_dict()

        def optimizer_state(self, optimizer):
            with self._full_state_dicts_in_place():
                return super().optimizer_state(optimizer)

        def load_checkpoint(self, checkpoint_path, weights_only=None):
            with self._full_state_dicts_in_place():
                return super().load_checkpoint(checkpoint_path, weights_only=weights_only)

    return LayerwiseFSDPStrategy


def _registered_strategy(name: str, extra: dict):
    """Lightning's registered strategy ``name`` built with ``extra`` arguments it accepts; other names unchanged."""
    from lightning.pytorch.strategies import StrategyRegistry

    entry = dict.get(StrategyRegistry, name)
    if entry is None or strategy_name(name) not in ("ddp", "deepspeed"):
        return name  # "auto", "single_device", ... : one process, no collective
    accepted = inspect.signature(entry["strategy"].__init__).parameters
    return entry["strategy"](**entry["init_params"], **{k: v for k, v in extra.items() if k in accepted})


def fsdp_root(trainer):
    """The trainer's FSDP-wrapped module, or None under any other strategy."""
    from torch.distributed.fsdp import FullyShardedDataParallel

    model = getattr(trainer.strategy, "model", None)
    return model if isinstance(model, FullyShardedDataParallel) else None


def _zero3(trainer) -> bool:
    return bool(getattr(trainer.strategy, "zero_stage_3", False))


def is_sharded(trainer) -> bool:
    """True when ranks hold only shards of the policy's weights (FSDP over 2+ processes, or ZeRO-3)."""
    if trainer is None or trainer.world_size < 2:
        return False
    return fsdp_root(trainer) is not None or _zero3(trainer)


@contextlib.contextmanager
def whole_weights(trainer) -> Iterator[None]:
    """Inside, every rank holds the whole policy and may run any forwards alone. Every rank must enter.

    Changes made to the weights inside are discarded.
    """
    if not is_sharded(trainer):
        yield
        return
    root = fsdp_root(trainer)
    if root is not None:
        from torch.distributed.fsdp import FullyShardedDataParallel

        with FullyShardedDataParallel.summon_full_params(root, writeback=False):
            yield
        return
    import deepspeed  # ZeRO-3; not run here (docs/distributed.md)

    with deepspeed.zero.GatheredParameters(list(trainer.lightning_module.parameters()), modifier_rank=None):
        yield


def full_state_dict(trainer, module: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    """``module.state_dict()`` with whole tensors, on global rank 0 (None elsewhere). Every rank must call.

    ``module`` is a submodule of the trained LightningModule (its policy); keys are relative to it.
    """
    root = fsdp_root(trainer)
    if root is not None:
        from torch.distributed.fsdp import FullStateDictConfig, FullyShardedDataParallel, StateDictType

        # FSDP's full state dict is taken from the root; its keys are the LightningModule's.
        prefix = next(name for name, sub in trainer.lightning_module.named_modules() if sub is module)
        prefix = f"{prefix}." if prefix else ""
        config = FullStateDictConfig(offload_to_cpu=trainer.strategy.root_device.type != "cpu", rank0_only=True)
        with FullyShardedDataParallel.state_dict_type(root, StateDictType.FULL_STATE_DICT, config):
            state = root.state_dict()
        if not trainer.is_global_zero:
            return None
        return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
    with whole_weights(trainer):
        if not trainer.is_global_zero:
            return None
        return {key: value.detach().cpu().clone() for key, value in module.state_dict().items()}
