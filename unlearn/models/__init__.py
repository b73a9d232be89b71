"""Models: loading, the built-in tiny Llama, LoRA, the policy, scoring and saving."""
