"""The model's context length against ``data.max_length``, read from its config before the weights load.

A model cannot attend past its ``max_position_embeddings``: examples longer than that would train
on positions it never learnt (or fail deep inside attention), so such a run is refused up front.
"""

from __future__ import annotations

from unlearn.errors import ConfigError


def context_limit(path: str, trust_remote_code: bool = False) -> int | None:
    """The ``max_position_embeddings`` of the model at ``path``; None when its config cannot be read or has none.

    A config that cannot be read is not reported here: loading the model says why it cannot load.
    """
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception:  # noqa: BLE001 (the tokenizer and weights loaders explain a missing or broken model)
        return None
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    limit = getattr(text_config, "max_position_embeddings", None)
    return limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else None


def check_context_length(paths: list[str | None], max_length: int, trust_remote_code: bool = False) -> None:
    """Refuse a ``data.max_length`` longer than the context of any model in ``paths`` (None entries are skipped).

    Raises:
        ConfigError: ``max_length`` exceeds a model's ``max_position_embeddings``.
    """
    for path in dict.fromkeys(p for p in paths if p):
        limit = context_limit(str(path), trust_remote_code)
        if limit is not None and max_length > limit:
            raise ConfigError(f"data.max_length={max_length} is longer than the context of the model {path} "
                              f"(max_position_embeddings={limit} in its config): examples that long cannot be "
                              f"trained or scored. Set data.max_length={limit} or less.")
