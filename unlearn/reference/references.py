"""The frozen reference model ``π_ref`` that NPO, DPO, UNDIAL, RMU and the KL retain term compare against.

Losses only talk to the small :class:`Reference` protocol, so a reference that computes on the fly
(:class:`ModelReference`) and one that reads precomputed sequence log-probs keyed by
``(split, inputs["index"])`` (:class:`CachedReference`) are interchangeable.

NPO's forget term needs one number per forget sample from the reference, its sequence log-prob,
and that number never changes during unlearning. Before the first update the policy *is* the
reference, so :class:`CachedReference` computes the numbers with the policy itself at the start
of training: no second copy of the weights ever exists, and a step costs what gradient ascent
costs. Each method may define ``setup(module)``, which the training module calls when fitting starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from unlearn.files import atomic_write
from unlearn.identity import short_hash, stable_json
from unlearn.losses.activations import layer_output
from unlearn.losses.base import forward_logits, sequence_nll
from unlearn.models.modes import eval_mode

REFERENCE_MODES = ("auto", "cache", "model", "adapter")
MISSING_TABLE = ("The reference log-prob cache is missing (neither the run's checkpoint nor the cache file in "
                 "run.cache_dir holds it), but the policy has already been updated, so it is no longer the "
                 "reference. Restart the run from the start.")


@runtime_checkable
class Reference(Protocol):
    """What a loss may ask of the reference model."""

    def sequence_logps(self, inputs: dict[str, Tensor], split: str) -> Tensor:
        """``log π_ref(a | q)``: sum of the label tokens' log-probs, one per row, without grad.

        Args:
            inputs: One split of a batch (``input_ids``, ``attention_mask``, ``labels``, ``index``).
            split: ``"forget"`` or ``"idk"``; with ``inputs["index"]`` it identifies each row, which
                is what lets a cache serve these numbers.

        Returns:
            ``(B,)`` float32 tensor.
        """
        ...

    def logits(self, inputs: dict[str, Tensor]) -> Tensor:
        """Full next-token logits ``(B, T, V)`` without grad (KL on retain batches, UNDIAL's teacher)."""
        ...

    def hidden_states(self, inputs: dict[str, Tensor], layer: int) -> Tensor:
        """Output ``(B, T, D)`` of decoder layer ``layer`` without grad (RMU's retain term)."""
        ...


class ModelReference:
    """A frozen Hugging Face causal LM serving as the reference.

    The model is frozen (``requires_grad_(False)``) and put in eval mode here. This class is
    deliberately not an ``nn.Module``: a parent module's ``.train()``, its optimizer and its
    checkpoint therefore never reach the reference, which can always be reloaded from the base model.
    Moving it to a device is the caller's job (``reference.model.to(device)``).

    Args:
        model: Causal LM returning ``.logits`` from ``model(input_ids=..., attention_mask=...)``.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.model.requires_grad_(False)
        self.model.eval()

    def setup(self, module: Any) -> None:
        """Put the reference on the policy's device when fitting starts."""
        self.model.to(module.device)

    @torch.no_grad()
    def sequence_logps(self, inputs: dict[str, Tensor], split: str) -> Tensor:
        """Sum of label-token log-probs per row; padding and prompt are ignored via ``-100`` labels."""
        del split  # every call is computed afresh, so rows need no key
        return -sequence_nll(forward_logits(self.model, inputs), inputs["labels"])

    @torch.no_grad()
    def logits(self, inputs: dict[str, Tensor]) -> Tensor:
        """Next-token logits of the frozen model, ``(B, T, V)``."""
        return forward_logits(self.model, inputs)

    @torch.no_grad()
    def hidden_states(self, inputs: dict[str, Tensor], layer: int) -> Tensor:
        """What decoder layer ``layer`` of the frozen model outputs, ``(B, T, D)``."""
        return layer_output(self.model, inputs, layer)


class AdapterReference:
    """The policy with its LoRA adapters switched off: the starting model, at no memory cost.

    The base weights never train under LoRA, so disabling the adapters gives back exactly the
    starting model. The network is put in eval mode for the reference pass (no dropout) and
    returned to the mode it was in.

    Args:
        policy: A ``peft`` model (its ``disable_adapter()`` context switches the adapters off).
    """

    def __init__(self, policy: Any) -> None:
        self.policy = policy

    def _forward(self, inputs: dict[str, Tensor]) -> Tensor:
        with eval_mode(self.policy), torch.no_grad(), self.policy.disable_adapter():
            return forward_logits(self.policy, inputs)

    def sequence_logps(self, inputs: dict[str, Tensor], split: str) -> Tensor:
        return -sequence_nll(self._forward(inputs), inputs["labels"])

    def logits(self, inputs: dict[str, Tensor]) -> Tensor:
        return self._forward(inputs)

    def hidden_states(self, inputs: dict[str, Tensor], layer: int) -> Tensor:
        """Decoder layer ``layer``'s output with the adapters off (the layer is found in the same network)."""
        with eval_mode(self.policy), torch.no_grad(), self.policy.disable_adapter():
            return layer_output(self.policy, inputs, layer)


class CachedReference:
    """Reference sequence log-probs computed once and looked up by ``(split, row index)``.

    Args:
        examples: Tokenised rows per split (``"forget"``, and ``"idk"`` for DPO) whose
            reference log-probs the loss will ask for; a row's position is its ``index``.
        pad_token_id: Padding id for batching them.
        batch_size: Rows per forward pass while computing.
        path: Optional file (safetensors) to reuse; written after computing, so a resumed or
            repeated run never recomputes.
        fingerprint: Identifies the model and data the numbers belong to; a file whose
            fingerprint differs is ignored rather than trusted.
        resuming: The run continues from a checkpoint, which carries the table
            (:meth:`state_dict`); the policy has been updated, so the table is never computed.
    """

    def __init__(self, examples: dict[str, list], pad_token_id: int, batch_size: int = 32,
                 path: str | Path | None = None, fingerprint: str = "", resuming: bool = False):
        self.examples, self.pad_token_id, self.batch_size = examples, pad_token_id, batch_size
        self.path = Path(path) if path else None
        self.fingerprint, self.resuming = fingerprint, resuming
        self.table: dict[str, Tensor] = {}

    @property
    def ready(self) -> bool:
        return set(self.table) == set(self.examples)

    def setup(self, module: Any) -> None:
        """Fill the table: from ``path`` when it matches, else with the not-yet-updated policy.

        Under DDP each rank scores every ``world``-th row and the shards are gathered, so the
        pass costs ``1/world`` of a full one per rank. A resumed run leaves it to the checkpoint.
        """
        if self.ready or self.load():
            return
        if self.resuming:
            # Most strategies restore the checkpoint (and with it this table, load_state_dict below)
            # before on_fit_start; FSDP and DeepSpeed only after it (Lightning's
            # restore_checkpoint_after_setup). check_ready confirms it once training starts.
            return
        # Lightning restores the step count only after on_fit_start, so a checkpoint path is the
        # other signal that the policy has moved on.
        if module.global_step > 0 or getattr(module.trainer, "ckpt_path", None) is not None:
            raise RuntimeError(MISSING_TABLE)
        trainer = module.trainer
        self.table = compute_sequence_logps(module.policy, self.examples, self.pad_token_id, self.batch_size,
                                            module.device, trainer.global_rank, trainer.world_size,
                                            gather=module.all_gather, context=trainer.precision_plugin.forward_context)
        if self.path is not None and trainer.is_global_zero:
            self.save()

    def check_ready(self) -> None:
        """Raises unless the table is full; called when training starts, after any checkpoint is restored."""
        if not self.ready:
            raise RuntimeError(MISSING_TABLE)

    def state_dict(self) -> dict:
        """The table and its fingerprint, saved in the run's checkpoints so a resume never recomputes."""
        return {"fingerprint": self.fingerprint, "table": {k: v.cpu() for k, v in self.table.items()}}

    def load_state_dict(self, state: dict) -> None:
        if state.get("fingerprint") != self.fingerprint:
            raise RuntimeError("The checkpoint's reference log-probs belong to another model or data set than this "
                               "run's; resume with the configuration the run started with.")
        self.table = dict(state["table"])

    def sequence_logps(self, inputs: dict[str, Tensor], split: str) -> Tensor:
        if split not in self.table:
            raise RuntimeError(f"No cached reference log-probs for the '{split}' split (cached: {sorted(self.table)}).")
        index = inputs["index"]
        return self.table[split].to(index.device)[index]

    def logits(self, inputs: dict[str, Tensor]) -> Tensor:
        raise RuntimeError("A cached reference holds sequence log-probs only; a loss that needs the reference's "
                           "full distribution (KL) needs reference.mode=model.")

    def hidden_states(self, inputs: dict[str, Tensor], layer: int) -> Tensor:
        raise RuntimeError("A cached reference holds sequence log-probs only; a loss that reads the reference's "
                           "hidden states (RMU) needs reference.mode=model (or adapter under LoRA).")

    def save(self) -> None:
        """Write the table atomically (temporary name, then rename)."""
        from safetensors.torch import save_file

        tensors = {k: v.cpu().contiguous() for k, v in self.table.items()}
        # A temporary name of its own per process: parallel runs of a sweep may fill the same table at once.
        atomic_write(self.path, lambda tmp: save_file(tensors, str(tmp), metadata={"fingerprint": self.fingerprint}))

    def load(self) -> bool:
        """Read the table from ``path`` if it exists and belongs to this model and data."""
        if self.path is None or not self.path.is_file():
            return False
        from safetensors import safe_open

        with safe_open(str(self.path), framework="pt") as f:
            if (f.metadata() or {}).get("fingerprint") != self.fingerprint:
                return False
            table = {k: f.get_tensor(k) for k in f.keys()}
        if set(table) != set(self.examples) or any(len(table[k]) != len(self.examples[k]) for k in table):
            return False
        self.table = table
        return True


@torch.no_grad()
def compute_sequence_logps(model, examples: dict[str, list], pad_token_id: int, batch_size: int, device,
                           rank: int = 0, world_size: int = 1, gather=None, context=None) -> dict[str, Tensor]:
    """``log π(a | q)`` for every row of every split, in eval mode, sharded over ranks.

    Each rank scores every ``world_size``-th row (batched by length in ``score_examples``).
    """
    from unlearn.models.scoring import score_examples

    table = {}
    for split, rows in examples.items():
        mine = list(range(rank, len(rows), world_size))
        nll, _ = score_examples(model, [rows[i] for i in mine], pad_token_id, batch_size, context)
        values = torch.zeros(len(rows), dtype=torch.float32, device=device)
        values[torch.tensor(mine, dtype=torch.long, device=device)] = -nll.to(device)
        if world_size > 1:
            # Each rank filled only its own rows (zeros elsewhere); summing the shards assembles the table.
            values = gather(values).sum(dim=0)
        table[split] = values.cpu()
    return table


def fingerprint(**parts: Any) -> str:
    """A short stable hash of the model identity and the exact token ids a cache was computed on.

    Every part must be JSON data (:func:`unlearn.identity.stable_json`); nothing falls back to a ``repr``.
    """
    return short_hash(stable_json(parts))
