"""The unlearning ``LightningModule``: a trainable policy, a frozen reference and a loss strategy.

The reference is held outside the module tree (a plain attribute of a non-``nn.Module``
object), so it is never in the optimiser, never in a checkpoint (it can always be rebuilt from
the starting model) and never switched to train mode by Lightning. Its ``setup`` runs when
fitting starts (moving a resident model to the device, or filling a log-prob cache).

A strategy that trains only some parameters (RMU) names them; the others are frozen here, before
the optimiser is built, so the optimiser (and its checkpointed state) holds the chosen ones only and
a resumed run rebuilds the same selection. A strategy with training state of its own (PDU's dual
variable) updates it after every batch, from values averaged over all processes, and its
``state_dict`` travels in every checkpoint.
"""

from __future__ import annotations

import lightning as L
import torch

from unlearn.training.guards import check_gradients, check_weights

from unlearn.errors import NonFiniteError
from unlearn.losses.base import UnlearningLoss
from unlearn.models.policy import freeze_all_but
from unlearn.training.optim import configure_adamw
from unlearn.training.sharding import fsdp_root, full_state_dict, is_sharded, whole_weights


class NonFiniteLossError(NonFiniteError):
    """The loss became NaN or infinite; training cannot continue meaningfully."""


class UnlearningModule(L.LightningModule):
    """Unlearns with ``loss`` starting from ``policy``.

    Args:
        policy: Hugging Face causal LM to unlearn (trained).
        loss: A strategy from :data:`unlearn.losses.LOSSES`.
        reference: Object following :class:`unlearn.reference.references.Reference`, or None when the
            strategy needs none.
        lr, weight_decay, warmup_epochs: AdamW with linear warm-up then linear decay (docs/definitions.md,
            "Optimiser").
        policy_factory: Builds a fresh copy of the starting policy on the CPU (same LoRA layout);
            under a sharding strategy :meth:`whole_policy` loads the gathered weights into it.
    """

    def __init__(self, policy, loss: UnlearningLoss, reference=None, lr: float = 1e-5,
                 weight_decay: float = 0.01, warmup_epochs: float = 1.0, policy_factory=None):
        super().__init__()
        needs_reference = loss.needs_reference_logps or loss.needs_reference_logits or loss.needs_reference_hidden_states
        if needs_reference and reference is None:
            raise ValueError(f"The '{type(loss).__name__}' loss needs a reference model, but none was given.")
        # from_pretrained returns eval mode and Lightning keeps module modes as they are;
        # the policy trains with its dropout on, as under Hugging Face's Trainer.
        self.policy = policy.train()
        trainable = loss.trainable_parameters(policy)
        if trainable is not None:
            freeze_all_but(policy, trainable)
        self.loss = loss
        self.reference = reference if needs_reference else None
        self.lr, self.weight_decay, self.warmup_epochs = lr, weight_decay, warmup_epochs
        # A plain attribute list, not a submodule: the copy is neither trained, sharded nor checkpointed.
        self._policy_factory, self._export = policy_factory, []

    def whole_policy(self):
        """The policy with whole weights, for saving. Under a sharding strategy every rank must call.

        Returns the policy itself unless the trainer shards it; then, on global rank 0, a CPU copy
        holding the gathered weights (built once, refilled on later calls), and None on other ranks.
        """
        if not is_sharded(self._trainer):
            return self.policy
        state = full_state_dict(self.trainer, self.policy)
        if state is None:
            return None
        if not self._export:
            if self._policy_factory is None:
                raise RuntimeError("The policy is sharded and this module was built without a policy_factory "
                                   "to hold its whole weights for saving.")
            self._export.append(self._policy_factory())
        self._export[0].load_state_dict(state, strict=True)  # strict: a partial gather must not pass as a model
        return self._export[0]

    def on_fit_start(self) -> None:
        # A resident reference moves to the policy's device; a cached one scores the forget set
        # now, while the policy is still the reference (see unlearn.reference.references).
        if hasattr(self.reference, "setup"):
            with whole_weights(self.trainer):  # each rank scores its own rows (unlearn.training.sharding)
                self.reference.setup(self)

    def on_train_start(self) -> None:
        # Every strategy has restored a resumed run's checkpoint by now (FSDP and DeepSpeed only after
        # on_fit_start), so a cached reference must be full: it is never recomputed from an updated policy.
        if hasattr(self.reference, "check_ready"):
            self.reference.check_ready()

    def on_train_epoch_start(self) -> None:
        # The forget/retain pairing moves on each epoch (see unlearn.data.datamodule).
        dataset = getattr(getattr(self.trainer, "datamodule", None), "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.current_epoch)

    def training_step(self, batch, batch_idx):
        out = self.loss(self.policy, batch, self.reference)
        if not torch.isfinite(out.loss):
            raise NonFiniteLossError(
                f"The {type(self.loss).__name__} loss is {out.loss.item()} at global step {self.global_step} "
                f"(epoch {self.current_epoch}, batch {batch_idx}). Lower optim.lr, set optim.gradient_clip_val, "
                "or use a strategy that does not diverge (plain gradient ascent has no lower bound).")
        size = batch["forget"]["input_ids"].size(0)
        self.log("train/loss", out.loss, prog_bar=True, batch_size=size)
        self.log("train/forget_loss", out.forget_loss, batch_size=size)
        if out.retain_loss is not None:
            self.log("train/retain_loss", out.retain_loss, batch_size=size)
        for name, value in out.extras.items():
            self.log(f"train/{name}", value, batch_size=size)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=size)
        # After the loss, before any callback checkpoints this batch (PDU's dual step).
        self.loss.update(out, self.current_epoch, self._mean_over_ranks)
        return out.loss

    def _mean_over_ranks(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` averaged over every process (an all-reduce; the value itself on one process)."""
        return self.trainer.strategy.reduce(value.detach().clone(), reduce_op="mean")

    def on_before_optimizer_step(self, optimizer) -> None:
        # Under 16-mixed precision the grad scaler expects occasional overflows and skips those
        # steps itself; a NaN loss is still caught in training_step.
        if getattr(self.trainer.precision_plugin, "scaler", None) is None:
            check_gradients(self.policy.named_parameters(), self.global_step, self.current_epoch,
                            lambda bad: self.trainer.strategy.reduce_boolean_decision(bad, all=False))

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        root = fsdp_root(self.trainer)
        if root is not None and gradient_clip_val and gradient_clip_algorithm in (None, "norm"):
            # Each rank holds a shard of every gradient: FSDP's own clip takes the norm over all of them,
            # where torch.nn.utils.clip_grad_norm_ (Lightning's default, which it refuses under FSDP) sees one.
            root.clip_grad_norm_(gradient_clip_val)
            return
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        check_weights(checkpoint["state_dict"], self.global_step)
        # A reference that holds computed state (a log-prob cache, never weights) saves it with the
        # policy: on resume the policy is already updated and could not recompute it.
        if callable(getattr(self.reference, "state_dict", None)):
            checkpoint["reference"] = self.reference.state_dict()
        loss_state = self.loss.state_dict()
        if loss_state:  # the strategy's training state (PDU's dual variable)
            checkpoint["loss_state"] = loss_state

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Lightning calls this before on_fit_start, so the reference's setup finds its state in place;
        # under FSDP and DeepSpeed after it, and a resuming reference leaves its table to this.
        if "reference" in checkpoint and callable(getattr(self.reference, "load_state_dict", None)):
            self.reference.load_state_dict(checkpoint["reference"])
        if "loss_state" in checkpoint:
            self.loss.load_state_dict(checkpoint["loss_state"])

    def configure_optimizers(self):
        return configure_adamw(self, self.policy, self.lr, self.weight_decay, self.warmup_epochs)
