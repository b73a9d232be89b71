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


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    """A ``run.cache_dir`` holding the built-in tiny benchmark and models (``--config tests/configs/tiny.yaml``), built once."""
    from tests.helpers import TINY_CONFIG
    from unlearn.config.loading import load_config
    from unlearn.training.assets import resolve_assets

    cache = tmp_path_factory.mktemp("tiny_cache")
    resolve_assets(load_config([TINY_CONFIG], [f"run.cache_dir={cache}"]))
    return cache


@pytest.fixture
def one_thread():
    """Tiny models train many times faster on one thread when the CPU is shared; the count is restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
