"""Config validation: every out-of-range value, unknown choice or conflicting pair fails at load time,
with a message that names the key, the value and the fix."""

import pytest

from unlearn.config.schema import Config

from unlearn.errors import ConfigError
from unlearn.config.loading import NOT_GROUPS, configs_dir, load_config
from unlearn.config.validation import validate
from tests.helpers import TINY_CONFIG


@pytest.mark.parametrize("override, message", [
    ("loss.beta=0", "loss.beta must be > 0, got 0.0 (loss.name=npo_rt)"),
    ("loss.beta=-1", "loss.beta must be > 0, got -1.0"),
    ("loss.c_rt=-0.5", "loss.c_rt must be >= 0, got -0.5"),
    ("loss.name=simnpo loss.gamma=-1", "loss.gamma must be >= 0, got -1.0 (loss.name=simnpo)"),
    ("optim.lr=0", "optim.lr must be > 0, got 0.0"),
    ("optim.lr=-1e-5", "optim.lr must be > 0, got -1e-05"),
    ("optim.lr=nan", "optim.lr must be > 0, got nan"),
    ("optim.weight_decay=-0.01", "optim.weight_decay must be >= 0, got -0.01"),
    ("optim.warmup_epochs=-1", "optim.warmup_epochs must be >= 0, got -1.0"),
    ("optim.accumulate_grad_batches=0", "optim.accumulate_grad_batches must be >= 1, got 0"),
    ("optim.gradient_clip_val=0", "optim.gradient_clip_val must be > 0 or null, got 0.0 (use null for no clipping)"),
    ("data.batch_size=0", "data.batch_size must be >= 1, got 0"),
    ("data.num_workers=-1", "data.num_workers must be >= 0, got -1"),
    ("data.max_length=4", "data.max_length must be >= 8, got 4 (TOFU runs use 500)"),
    ("trainer.max_epochs=0", "trainer.max_epochs must be >= 1, got 0"),
    ("finetune.epochs=0", "finetune.epochs must be >= 1, got 0"),
    ("finetune.lr=0", "finetune.lr must be > 0, got 0.0"),
    ("run.checkpoint_every_n_steps=0", "run.checkpoint_every_n_steps must be >= 1 or null, got 0"),
])
def test_out_of_range_values_name_key_value_and_fix(override, message):
    with pytest.raises(ConfigError) as err:
        load_config([], override.split())
    assert message in str(err.value)


@pytest.mark.parametrize("override, message", [
    ("data.source=hub", "data.source='hub' is not a valid choice; choose one of: builtin, tofu, files, muse, muse_builtin, wmdp, hazard_builtin."),
    ("model.prompt_format=alpaca", "model.prompt_format='alpaca' is not a valid choice; choose one of: plain, llama2, "
                                   "chat_template, tofu_phi."),
    ("model.dtype=fp16", "model.dtype='fp16' is not a valid choice; choose one of: float32, bfloat16, float16."),
    ("trainer.precision=bf16-mix", "trainer.precision='bf16-mix' is not a valid choice; choose one of: 32-true, "
                                   "16-mixed, bf16-mixed"),
    ("loss.name=npo2", "loss: unknown loss 'npo2'; valid losses: ['ce_u', 'dpo', 'ga', 'grad_diff', 'idk', 'kl', "
                       "'npo', 'npo_kl', 'npo_rt', 'pdu', 'rmu', 'satimp', 'simnpo', 'undial', 'wga']. Did you mean 'npo'?"),
    ("loss.name=npo_kl loss.kl_mask=some", "kl_mask must be one of ['answer', 'all', 'padded'], got 'some'"),
])
def test_unknown_choices_list_the_valid_ones(override, message):
    with pytest.raises(ConfigError) as err:
        load_config([], override.split())
    assert message in str(err.value)


@pytest.mark.parametrize("overrides, message", [
    (["run.resume=true", "run.overwrite=true", "run.name=a"],
     "run.resume=true and run.overwrite=true exclude each other"),
    (["run.resume=true"], "run.resume=true needs run.name=<the folder name of the run to continue>"),
    (["trainer.max_epochs=2", "optim.warmup_epochs=3"],
     "optim.warmup_epochs=3.0 is more than trainer.max_epochs=2: the learning rate would never reach its set value"),
    (["trainer.max_epochs=1", "optim.warmup_epochs=1.5"], "Set optim.warmup_epochs=1 or lower, or raise trainer.max_epochs."),
    (["finetune.epochs=1", "finetune.warmup_epochs=2"], "finetune.warmup_epochs=2.0 is more than finetune.epochs=1"),
    (["run.name=../elsewhere"], "run.name='../elsewhere' must be a plain folder name"),
    (["data.forget_split=my_forget"], "data.forget_split='my_forget' does not follow TOFU's forgetNN naming"),
    (["data.retain_split=forget10"], "data.retain_split and data.forget_split are both 'forget10'"),
])
def test_conflicting_options_are_rejected(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config([], overrides)
    assert message in str(err.value)


def test_valid_configs_pass_and_validate_is_also_callable_directly():
    assert validate(Config()) == Config()
    load_config([], ["data.forget_split=my_forget", "data.retain_split=my_retain", "run.resume=true", "run.name=a"])
    for path in sorted(p for p in configs_dir().rglob("*.yaml") if p.parent.name not in NOT_GROUPS):
        load_config([TINY_CONFIG, str(path)])  # every shipped file is valid on top of the smoke config
    bad = Config()
    bad.optim.lr = -1.0
    with pytest.raises(ConfigError, match="optim.lr must be > 0"):
        validate(bad)
