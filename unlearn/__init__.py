"""Make a causal language model forget a chosen set of data: NPO and its baselines on PyTorch Lightning.

The layout is described in docs/architecture.md.
"""
