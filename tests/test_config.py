"""Config merging: typed defaults -> YAML files in order -> key=value overrides, with clear errors."""


import pytest

from unlearn.config.schema import Config, save_config

from unlearn.errors import ConfigError
from unlearn.config.loading import NOT_GROUPS, configs_dir, load_config, read_config_file


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
    files = sorted(p for p in configs_dir().rglob("*.yaml") if p.parent.name not in NOT_GROUPS)
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
    from unlearn.losses import build_loss_from_config

    assert build_loss_from_config(load_config([], ["loss.name=ga"]).loss).hparams() == {}
    assert build_loss_from_config(load_config([], ["loss.name=npo"]).loss).hparams() == {"beta": load_config().loss.beta}
    assert build_loss_from_config(load_config(["loss/npo_rt"]).loss).hparams() == {"beta": 0.1, "c_npo": 1.0, "c_rt": 1.0}


@pytest.mark.parametrize("overrides, key", [
    (["loss.name=ga", "loss.beta=0.3"], "beta"),
    (["loss.name=npo_rt", "loss.c_kl=2"], "c_kl"),
])
def test_changed_hyperparameter_unused_by_the_strategy_is_an_error(overrides, key):
    from unlearn.losses import build_loss_from_config

    with pytest.raises(ConfigError, match=f"'{key}'"):
        build_loss_from_config(load_config([], overrides).loss)


def test_group_override_selects_a_config_file_like_config_flag():
    assert load_config([], ["data=tofu"]) == load_config(["data/tofu"])
    # The group's file merges before key=value overrides, whatever their order on the command line.
    cfg = load_config([], ["data.forget_split=forget01", "data=tofu", "loss=npo"])
    assert (cfg.data.source, cfg.data.forget_split, cfg.loss.name) == ("tofu", "forget01", "npo")
    assert load_config([], ["data.source=tofu"]).data.source == "tofu"  # a real key is still a key


def test_unknown_group_name_lists_the_group_files():
    with pytest.raises(ConfigError, match=r"no config 'tofoo' in configs/data/.*builtin, .*tofu, wmdp\."):
        load_config([], ["data=tofoo"])


# --- `defaults`: a YAML file names the config groups it builds on ----------------------------------

def test_defaults_merge_groups_in_order_then_the_files_own_keys(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("defaults:\n  - data/tofu\n  - loss: npo\n  - model/tofu_llama2_7b\n"
                    "data:\n  forget_split: forget05\nloss:\n  beta: 0.3\n")
    cfg = load_config([str(path)])
    assert load_config(["data/tofu", "loss/npo", "model/tofu_llama2_7b"], ["data.forget_split=forget05",
                                                                           "loss.beta=0.3"]) == cfg
    assert (cfg.data.source, cfg.data.max_length, cfg.loss.name, cfg.model.path) == (
        "tofu", 500, "npo", "locuslab/tofu_ft_llama2-7b")
    # Later defaults override earlier ones; files and overrides after this one override it.
    path.write_text("defaults: [loss/npo, loss/simnpo]\n")
    assert load_config([str(path)]).loss.name == "simnpo"
    assert load_config([str(path)], ["loss.beta=0.2"]).loss.beta == 0.2


def test_defaults_compose_through_files_and_relative_paths(tmp_path):
    (tmp_path / "base.yaml").write_text("defaults: [data/tofu]\noptim:\n  lr: 0.5\n")
    (tmp_path / "exp.yaml").write_text("defaults: [base.yaml]\noptim:\n  lr: 0.25\n")
    cfg = load_config([str(tmp_path / "exp.yaml")])
    assert (cfg.data.source, cfg.optim.lr) == ("tofu", 0.25)
    # A shipped per-split loss file builds on the forget10 one.
    assert read_config_file("loss/simnpo_forget01")["loss"]["beta"] == 2.5
    assert "defaults" not in read_config_file("loss/simnpo_forget01")


def test_paper_experiment_names_its_groups_and_adds_overrides():
    text = (configs_dir() / "experiment" / "tofu_llama2.yaml").read_text()
    assert "defaults:" in text and "path:" not in text  # the model and data groups are not repeated
    cfg = load_config(["experiment/tofu_llama2"], ["loss=npo", "data.forget_split=forget10"])
    groups = load_config(["model/tofu_llama2_7b", "data/tofu", "loss/npo"])
    assert (cfg.model, cfg.loss) == (groups.model, groups.loss)
    assert (cfg.data.path, cfg.data.max_length, cfg.data.batch_size, cfg.eval.max_new_tokens) == (
        "locuslab/TOFU", 500, 4, 200)
    assert (cfg.optim.lr, cfg.trainer.max_epochs, cfg.trainer.precision, cfg.run.seed) == (1e-5, 10, "bf16-true", 1001)


@pytest.mark.parametrize("defaults, message", [
    ("[data/tofoo]", r"defaults entry 'data/tofoo' in config file .*exp\.yaml: there is no config 'tofoo' in "
                     r"configs/data/\. Choose one of: builtin, .*tofu"),
    ("[{data: tofoo}]", r"there is no config 'tofoo' in configs/data/"),
    ("[dataa/tofu]", r"there is no config group 'dataa' in configs/\. Choose one of: data, experiment, loss"),
    ("[tofu]", r"defaults entry 'tofu'.*write group/name"),
    ("{data: tofu}", r"'defaults' in config file .*exp\.yaml must be a list"),
    ("[missing.yaml]", r"missing\.yaml not found"),
])
def test_unknown_defaults_entries_give_the_group_error(tmp_path, defaults, message):
    path = tmp_path / "exp.yaml"
    path.write_text(f"defaults: {defaults}\n")
    with pytest.raises(ConfigError, match=message):
        load_config([str(path)])


def test_misspelt_key_in_a_file_with_defaults_names_that_file(tmp_path):
    (tmp_path / "base.yaml").write_text("optim:\n  lrr: 1\n")
    (tmp_path / "exp.yaml").write_text("defaults: [data/tofu, base.yaml]\n")
    with pytest.raises(ConfigError, match=r"Unknown config key 'optim\.lrr' in config file .*base\.yaml.*'optim\.lr'"):
        load_config([str(tmp_path / "exp.yaml")])
    (tmp_path / "base.yaml").write_text("optim:\n  lr: fast\n")
    with pytest.raises(ConfigError, match=r"Invalid value for 'optim\.lr' in config file .*base\.yaml"):
        load_config([str(tmp_path / "exp.yaml")])


def test_files_including_each_other_are_an_error(tmp_path):
    (tmp_path / "a.yaml").write_text("defaults: [b.yaml]\n")
    (tmp_path / "b.yaml").write_text("defaults: [data/tofu, a.yaml]\n")
    with pytest.raises(ConfigError, match=r"include each other.*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        load_config([str(tmp_path / "a.yaml")])
    (tmp_path / "a.yaml").write_text("defaults: [a.yaml]\n")
    with pytest.raises(ConfigError, match="include each other"):
        load_config([str(tmp_path / "a.yaml")])
    # The same file twice, not in a cycle, is fine.
    (tmp_path / "b.yaml").write_text("defaults: [data/tofu, data/tofu]\n")
    assert load_config([str(tmp_path / "b.yaml")]).data.source == "tofu"


def test_test_presets_load_and_are_not_shipped():
    from tests.helpers import TINY_CONFIG, TOFU_LOCAL_CONFIG

    assert load_config([TINY_CONFIG]).model.builtin.hidden_size == 32
    local = load_config([TOFU_LOCAL_CONFIG])
    assert (local.data.source, local.data.path) == ("tofu", "../shared/data/tofu")
    assert local.eval == load_config(["data/tofu"]).eval
    shipped = {p.stem for p in configs_dir().rglob("*.yaml")}
    assert not shipped & {"tiny", "tofu_local", "tofu_hub"}
