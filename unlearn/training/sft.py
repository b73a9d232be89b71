"""Supervised fine-tuning: the token-mean NLL of answer tokens, in a Lightning loop of its own.

``finetune`` teaches the target and retain models their benchmark with it, the built-in MUSE and
multiple-choice stand-ins train theirs, and the relearning attack fine-tunes an unlearned model back.
"""

from __future__ import annotations

import logging

import lightning as L
from torch.utils.data import DataLoader

from unlearn.config.schema import FinetuneConfig
from unlearn.data.formatting import PromptFormat, TokenizedExample, collate, tokenize_qa
from unlearn.losses.base import token_mean_nll
from unlearn.training.optim import configure_adamw

log = logging.getLogger(__name__)


class SupervisedFinetuning(L.LightningModule):
    """Token-mean NLL on answer tokens: plain supervised fine-tuning."""

    def __init__(self, model, lr: float, weight_decay: float, warmup_epochs: float):
        super().__init__()
        self.model = model.train()  # Lightning keeps module modes; from_pretrained returns eval mode
        self.lr, self.weight_decay, self.warmup_epochs = lr, weight_decay, warmup_epochs

    def training_step(self, batch, batch_idx):
        logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = token_mean_nll(logits, batch["labels"])
        self.log("finetune/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return configure_adamw(self, self.model, self.lr, self.weight_decay, self.warmup_epochs)


def train_on_rows(model, tokenizer, rows: list[dict], prompt_format: str | PromptFormat, max_length: int,
                  settings: FinetuneConfig, accelerator: str = "auto", precision: str = "32-true",
                  progress_bar: bool = True, desc: str = "model"):
    """Fine-tune ``model`` in place on question/answer ``rows`` (epochs, batch and optimiser from ``settings``)."""
    fmt = PromptFormat.of(prompt_format)
    examples = [tokenize_qa(tokenizer, fmt, r["question"], r["answer"], max_length) for r in rows]
    return train_on_examples(model, tokenizer, examples, settings, accelerator, precision, progress_bar, desc)


def train_on_examples(model, tokenizer, examples: list[TokenizedExample], settings: FinetuneConfig,
                      accelerator: str = "auto", precision: str = "32-true", progress_bar: bool = True,
                      desc: str = "model"):
    """Fine-tune ``model`` in place on tokenised ``examples`` (NLL on their labels); returns it on the CPU, in eval
    mode."""
    loader = DataLoader(examples, batch_size=settings.batch_size, shuffle=True,
                        collate_fn=lambda batch: collate(batch, tokenizer.pad_token_id))
    log.info("Fine-tuning the %s model on %d examples for %d epochs", desc, len(examples), settings.epochs)
    module = SupervisedFinetuning(model, settings.lr, settings.weight_decay, settings.warmup_epochs)
    trainer = L.Trainer(max_epochs=settings.epochs, accelerator=accelerator, devices=1, precision=precision,
                        logger=False, enable_checkpointing=False, enable_model_summary=False,
                        enable_progress_bar=progress_bar)
    trainer.fit(module, loader)
    return model.cpu().eval()
