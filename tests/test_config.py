"""Config merging: typed defaults -> YAML files in order -> key=value overrides, with clear errors."""

from pathlib import Path

import pytest

from unlearn.config.schema import Config, ConfigError, save_config
from unlearn.config.loading import configs_dir, load_config


def test_defaults_are_the_builtin_run_with_spec_loss_defaults():
    cfg = load_config()
    assert cfg.data.source == "builtin" and cfg.model.path is None
    assert cfg.loss.name == "npo_rt"
    assert cfg.run.seed == 1001 and cfg.optim.weight_decay == 0.01 and cfg.optim.warmup_epochs == 1.0


def test_yaml_files_merge_in_order_then_overrides(tmp_path):
    first = tmp_path / "a.yaml"
    first.write_text("loss:\n  name: npo\n  beta: 0.5\noptim:\n  lr: 0.1\n")
    second = tmp_path / "b.yaml"
    second.write_text("loss:\n  beta: 0.7\n")
    cfg = load_config([str(first), str(second)], ["optim.lr=0.25"])
    assert cfg.loss.name == "npo" and cfg.loss.beta == 0.7 and cfg.optim.lr == 0.25


@pytest.mark.parametrize("override, suggestion", [
    ("optim.lrr=1", "optim.lr"),
    ("lr=1", "optim.lr"),
    ("model.builtin.hiden_size=3", "model.builtin.hidden_size"),
    ("loss.bta=0.1", "loss.beta"),
])
def test_misspelt_key_names_it_and_the_closest_valid_key(override, suggestion):
    with pytest.raises(ConfigError) as err:
        load_config([], [override])
    assert f"'{override.split('=')[0]}'" in str(err.value)
    assert suggestion in str(err.value)


def test_misspelt_key_in_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("trainer:\n  max_epoch: 3\n")
    with pytest.raises(ConfigError, match=r"trainer\.max_epoch.*bad\.yaml.*trainer\.max_epochs"):
        load_config([str(path)])


def test_wrong_type_and_malformed_override_and_missing_file():
    with pytest.raises(ConfigError, match="loss.beta"):
        load_config([], ["loss.beta=abc"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config([], ["loss.beta"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(["no/such/file.yaml"])


def test_every_shipped_yaml_loads():
    files = sorted(configs_dir().rglob("*.yaml"))
    assert len(files) >= 10
    for path in files:
        assert isinstance(load_config([str(path)]), Config), path


def test_named_config_resolves_under_configs_dir():
    assert load_config(["loss/npo"]).loss.name == "npo"


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config([], ["loss.name=simnpo", "loss.beta=2.5"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config([str(tmp_path / "config.yaml")]) == cfg


def test_default_hyperparameters_reach_only_strategies_that_take_them():
    from unlearn.training.fit import build_loss_from_config

    assert build_loss_from_config(load_config([], ["loss.name=ga"])).hparams() == {}
    assert build_loss_from_config(load_config([], ["loss.name=npo"])).hparams() == {"beta": load_config().loss.beta}
    assert build_loss_from_config(load_config(["loss/npo_rt"])).hparams() == {"beta": 0.1, "c_npo": 1.0, "c_rt": 1.0}


@pytest.mark.parametrize("overrides, key", [
    (["loss.name=ga", "loss.beta=0.3"], "beta"),
    (["loss.name=npo_rt", "loss.c_kl=2"], "c_kl"),
])
def test_changed_hyperparameter_unused_by_the_strategy_is_an_error(overrides, key):
    from unlearn.training.fit import build_loss_from_config

    with pytest.raises(ConfigError, match=f"'{key}'"):
        build_loss_from_config(load_config([], overrides))


def test_group_override_selects_a_config_file_like_config_flag():
    assert load_config([], ["data=tofu"]) == load_config(["data/tofu"])
    # The group's file merges before key=value overrides, whatever their order on the command line.
    cfg = load_config([], ["data.forget_split=forget01", "data=tofu_local", "loss=npo"])
    assert (cfg.data.source, cfg.data.forget_split, cfg.loss.name) == ("tofu", "forget01", "npo")
    assert load_config([], ["data.source=tofu"]).data.source == "tofu"  # a real key is still a key


def test_unknown_group_name_lists_the_group_files():
    with pytest.raises(ConfigError, match=r"no config 'tofoo' in configs/data/.*tofu_local"):
        load_config([], ["data=tofoo"])
