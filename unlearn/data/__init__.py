"""Data: benchmark sources (built-in, TOFU, the user's files), tokenisation and the unlearning data module."""
