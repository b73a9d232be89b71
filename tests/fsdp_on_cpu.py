"""``python tests/fsdp_on_cpu.py fit ...``: ``python -m unlearn`` with FSDP allowed on CPU processes (gloo).

Lightning refuses FSDP without a GPU, torch's FSDP must be told that its device is the CPU, and
Lightning's full-state-dict checkpoints "offload to the CPU" tensors already there, which crashes
torch's FSDP. These three patches let tests/test_sharding.py run the project's FSDP code paths (sharded training,
gathering for evaluation and saving) on 2 CPU processes; nothing of the project is changed.
Lightning's launcher starts the second rank by re-running this script, so both ranks are patched.
"""

import sys

import lightning.pytorch.strategies as strategies
import lightning.pytorch.strategies.fsdp as lightning_fsdp
import torch
from torch.distributed.fsdp import FullOptimStateDictConfig, FullStateDictConfig, FullyShardedDataParallel, StateDictType


class CPUFSDPStrategy(strategies.FSDPStrategy):
    """Lightning's FSDP strategy; a subclass passes the accelerator check, which tests the exact type."""


_fsdp_init = FullyShardedDataParallel.__init__


def _fsdp_init_on_cpu(self, *args, device_id=None, **kwargs):
    _fsdp_init(self, *args, device_id=torch.device("cpu") if device_id is None else device_id, **kwargs)


def _full_state_dict_context_on_cpu(module, world_size, rank0_only=True):
    return FullyShardedDataParallel.state_dict_type(
        module, StateDictType.FULL_STATE_DICT, FullStateDictConfig(offload_to_cpu=False, rank0_only=rank0_only),
        FullOptimStateDictConfig(offload_to_cpu=False, rank0_only=rank0_only))


strategies.FSDPStrategy = CPUFSDPStrategy  # what unlearn.sharding.build_strategy builds
FullyShardedDataParallel.__init__ = _fsdp_init_on_cpu
lightning_fsdp._get_full_state_dict_context = _full_state_dict_context_on_cpu

if __name__ == "__main__":
    from unlearn.cli import main

    sys.exit(main(sys.argv[1:]))
