"""The frozen reference (resident model, adapter-disabled LoRA, or a log-prob cache) and choosing one."""
