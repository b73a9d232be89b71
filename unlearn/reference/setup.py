"""Choosing and building the reference for a run (``reference.mode``).

- ``cache``: the reference's sequence log-probs, computed once with the not-yet-updated policy and
  stored under ``run.cache_dir`` keyed by the model's identity and the exact token ids, so a later
  run with the same model and data reuses them. No second copy of the weights is ever held.
- ``model``: a second, frozen copy of the starting model, resident for the whole run. Needed
  when a loss reads the reference's full distribution (the KL retain term, UNDIAL's teacher) or its
  hidden states (RMU's retain term).
- ``adapter``: under LoRA, the same network with its adapters switched off.
- ``auto``: the cheapest reference that serves the loss: ``cache`` when it needs only sequence
  log-probs (``npo``, ``npo_rt``, ``dpo``); ``model`` when it needs logits (``kl``, ``npo_kl``,
  ``undial``, and ``wga`` / ``satimp`` / ``pdu`` / ``simnpo`` / ``dpo`` with ``retain=kl``) or
  hidden states (``rmu``); ``adapter`` under LoRA whatever it needs; none when the loss needs no
  reference (``ga``, ``grad_diff``, ``idk``, ``simnpo``, ``wga``, ``satimp``, ``ce_u``, ``pdu``). A
  cache of UNDIAL's logits (a vocabulary-sized row per forget token) or of RMU's retain hidden
  states (a hidden-size row per retain token, and RMU pairs every retain row in turn) would not fit
  where a second model does not, so neither is offered. Under FSDP/DeepSpeed ``model`` is refused
  (see :func:`resolve_reference_mode`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


from unlearn.errors import ConfigError
from unlearn.identity import model_identity
from unlearn.reference.references import REFERENCE_MODES, AdapterReference, CachedReference, ModelReference, fingerprint


def resolve_reference_mode(mode: str, loss, lora: bool = False, strategy: str = "auto") -> str | None:
    """The mode a run uses, or None when the loss needs no reference.

    Under FSDP or DeepSpeed (``strategy``) the trainer shards only the policy: a resident second
    model would sit whole and unsharded on every device, so ``model`` is refused there and
    ``auto`` picks the cache (or the adapter reference under LoRA).

    Raises:
        ConfigError: the mode cannot serve the loss or the strategy, with the reason.
    """
    from unlearn.training.distributed import SHARDED_STRATEGIES, strategy_name

    name = type(loss).__name__
    if mode not in REFERENCE_MODES:
        raise ConfigError(f"reference.mode must be one of {', '.join(REFERENCE_MODES)}, got '{mode}'.")
    hidden = getattr(loss, "needs_reference_hidden_states", False)
    if not (loss.needs_reference_logps or loss.needs_reference_logits or hidden):
        return None
    family = strategy_name(strategy)
    full = loss.needs_reference_logits or hidden  # what a log-prob cache cannot hold
    reads = ("the reference's hidden states at a decoder layer (RMU)" if hidden
             else "the reference's full next-token distribution (KL, UNDIAL)")
    resident = mode == "model" or (mode == "auto" and full)
    if family in SHARDED_STRATEGIES and not lora and resident:
        needs = (f"it reads {reads}, which a log-prob cache cannot hold"
                 if full else "use reference.mode=cache (or auto), which needs no second model")
        raise ConfigError(
            f"{name} with trainer.strategy={strategy}: a second, frozen reference model (reference.mode=model) is "
            f"not sharded by {family}, so every device would hold a whole unsharded copy; {needs}. Options: "
            "model.lora.enabled=true (the reference is the same sharded network with its adapters off), or "
            "trainer.strategy=ddp with reference.mode=model when two copies fit on one device.")
    if mode == "auto":
        return "adapter" if lora else ("model" if full else "cache")
    if mode == "cache" and full:
        raise ConfigError(f"reference.mode=cache cannot serve {name}: it reads {reads}, and a cache holds one "
                          "log-prob per forget sample. Use reference.mode=model (or auto).")
    if mode == "adapter" and not lora:
        raise ConfigError("reference.mode=adapter needs LoRA adapters on the policy (the reference is the same "
                          "network with its adapters off); turn LoRA on or use reference.mode=auto.")
    return mode


def build_reference(loss, mode: str, model_path: str, datamodule, load_reference_model: Callable[[], object],
                    policy=None, strategy: str = "auto", dtype: str = "float32", precision: str = "32-true",
                    cache_dir: str = ".cache/unlearn", batch_size: int = 8, resuming: bool = False):
    """The reference object for the run, or None when ``loss`` needs none.

    Args:
        loss: The strategy; what it reads of the reference decides the mode under ``auto``.
        mode: ``reference.mode`` (see :func:`resolve_reference_mode`).
        model_path: The starting model (its identity keys the cache).
        datamodule: Its tokenised forget (and IDK) rows are what the cache covers.
        load_reference_model: Zero-argument callable loading a fresh copy of the starting model.
        policy: The policy; under LoRA (a ``peft`` model) the adapter reference uses it.
        strategy: ``trainer.strategy``; sharded strategies refuse a resident copy.
        dtype, precision: Part of the cache key (the log-probs depend on them).
        cache_dir: The cache lives in ``<cache_dir>/reference``.
        batch_size: Sequences per forward pass when the cache is filled.
        resuming: The run continues from a checkpoint: the cache comes back with it (or from
            ``cache_dir``) and is never computed from the already updated policy.
    """
    from unlearn.models.lora import is_lora

    mode = resolve_reference_mode(mode, loss, lora=policy is not None and is_lora(policy), strategy=strategy)
    if mode is None:
        return None
    if mode == "model":
        return ModelReference(load_reference_model())
    if mode == "adapter":
        return AdapterReference(policy)
    examples = {"forget": datamodule.forget.examples}
    if loss.uses_idk:
        examples["idk"] = datamodule.idk.examples
    key = fingerprint(model=model_identity(model_path), dtype=dtype, precision=precision,
                      tokens={k: [e.input_ids for e in v] for k, v in examples.items()},
                      labels={k: [e.labels for e in v] for k, v in examples.items()})
    path = Path(cache_dir).expanduser() / "reference" / f"{key}.safetensors"
    return CachedReference(examples, datamodule.tokenizer.pad_token_id, batch_size, path, key, resuming)
