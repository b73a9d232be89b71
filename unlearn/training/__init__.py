"""Training: the fit and finetune jobs, the LightningModule, optimiser, guards, checkpoints, resume and multi-process runs."""
