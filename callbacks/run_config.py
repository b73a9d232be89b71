"""The resolved config a run trains with, saved in every checkpoint.

``<run>/config.yaml`` can be deleted or edited; the checkpoint is what a resumed run continues, so
it carries the config too, and ``--resume`` compares against that copy
(:func:`unlearn.training.resume.check_resumable`, read with
:func:`unlearn.training.checkpoints.checkpoint_config`). A resumed run keeps the config the run
started with in its later checkpoints.
"""

from __future__ import annotations

import lightning as L
from typing_extensions import override

from unlearn.training.checkpoints import RUN_CONFIG_STATE


class RunConfig(L.Callback):
    """Holds the run's resolved config (YAML text, from ``fit``) as its checkpoint state.

    Args:
        config_yaml: ``unlearn.config.schema.to_yaml(cfg)`` of the run.
    """

    def __init__(self, config_yaml: str):
        if not isinstance(config_yaml, str) or not config_yaml.strip():
            raise ValueError("RunConfig needs the run's resolved config as YAML text.")
        self.config_yaml = config_yaml

    @property
    @override
    def state_key(self) -> str:
        return RUN_CONFIG_STATE

    @override
    def state_dict(self) -> dict:
        return {"config": self.config_yaml}

    @override
    def load_state_dict(self, state_dict: dict) -> None:
        if isinstance(state_dict.get("config"), str):  # the config the run started with stays its record
            self.config_yaml = state_dict["config"]
