"""Saved models: Hugging Face folders (safetensors) that are complete or absent, never half-written."""

from __future__ import annotations

from pathlib import Path

from unlearn.errors import RunFolderError
from unlearn.files import atomic_folder
from unlearn.models.lora import model_for_saving


def save_pretrained_atomic(model, tokenizer, out: Path) -> None:
    """Hugging Face folder (safetensors weights, tokenizer) written to a temporary sibling, then renamed.

    Raises:
        FileExistsError: ``out`` already exists; a saved model is never replaced.
    """
    out = Path(out)
    message = f"{out} already exists; a saved model is never overwritten."
    if out.exists():
        raise RunFolderError(message)
    try:
        # A temporary name unique to this process: parallel runs filling one cache never collide.
        with atomic_folder(out) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp)
    except FileExistsError as err:  # another process saved it meanwhile
        raise RunFolderError(message) from err


def save_model(policy, tokenizer, out: Path, merge_lora: bool = True) -> None:
    """Hugging Face format, safetensors, written to a temporary name and renamed when complete.

    Under LoRA the adapters are merged into the base weights unless ``merge_lora`` is false.
    """
    save_pretrained_atomic(model_for_saving(policy, merge_lora), tokenizer, out)
