"""Shared test fixtures: everything offline, tiny, and built in-process."""

import os
from pathlib import Path

# No test may reach the Hugging Face hub; an accidental hub lookup fails at once instead of retrying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TOFU_DIR = REPO.parent / "shared" / "data" / "tofu"


@pytest.fixture(scope="session")
def tofu_dir() -> Path:
    """The real TOFU files beside the checkout (``../shared/data/tofu``)."""
    if not (TOFU_DIR / "full.json").is_file():
        pytest.skip(f"real TOFU files not found at {TOFU_DIR}")
    return TOFU_DIR
