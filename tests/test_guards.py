"""Numerical guards: a NaN loss, gradient or weight stops the run, and no checkpoint ever holds one."""

import copy

import lightning as L
import pytest

from unlearn.models.loading import load_model
import torch

from tests.helpers import QA, TINY_CONFIG, tiny_model, tiny_tokenizer
from unlearn.training.checkpoints import LAST, AtomicCheckpointIO
from unlearn.cli import main
from unlearn.data.datamodule import UnlearningDataModule
from unlearn.training.guards import NonFiniteGradientError, NonFiniteWeightsError, check_gradients
from unlearn.losses import build_loss
from unlearn.training.module import UnlearningModule


class NaNGradient(torch.autograd.Function):
    """Identity forward, NaN backward: a finite loss whose gradient is not."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, float("nan"))


class Poisoned:
    """A loss strategy that turns its loss (or only its gradient) into NaN after ``good_steps`` calls."""

    def __init__(self, loss, good_steps: int, what: str):
        self.inner, self.good_steps, self.what, self.calls = loss, good_steps, what, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, policy, batch, reference):
        out = self.inner(policy, batch, reference)
        self.calls += 1
        if self.calls > self.good_steps:
            out.loss = out.loss * float("nan") if self.what == "loss" else NaNGradient.apply(out.loss)
        return out


@pytest.fixture(scope="module")
def tokenizer():
    tok = tiny_tokenizer()
    tok.pad_token = tok.eos_token
    return tok


def test_nan_gradient_stops_before_the_update_and_names_step_and_parameters(tokenizer, one_thread):
    policy = tiny_model(tokenizer)
    module = UnlearningModule(policy, Poisoned(build_loss("ga"), 2, "gradient"), lr=1e-2, warmup_epochs=0.0)
    dm = UnlearningDataModule(QA[:8], QA[8:], [], tokenizer, batch_size=2, uses_retain=False)
    trainer = L.Trainer(max_steps=5, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    before = {}

    class Snapshot(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            before.update({k: v.clone() for k, v in pl_module.policy.state_dict().items()})

    trainer.callbacks.append(Snapshot())
    with pytest.raises(NonFiniteGradientError, match=r"global step 2 \(epoch 0\) in model\.embed_tokens\.weight"):
        trainer.fit(module, datamodule=dm)
    assert all(torch.equal(v, before[k]) for k, v in module.policy.state_dict().items()), "the NaN step was applied"


def test_gradient_check_lists_a_few_names_and_agrees_across_ranks():
    model = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(4)])
    for p in model.parameters():
        p.grad = torch.full_like(p, float("inf"))
    names = r"in 0\.weight, 0\.bias, 1\.weight, 1\.bias, 2\.weight and 3 more"
    with pytest.raises(NonFiniteGradientError, match=names):
        check_gradients(model.named_parameters(), step=7, epoch=1)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    check_gradients(model.named_parameters(), 7, 1)
    with pytest.raises(NonFiniteGradientError, match="on another process"):
        check_gradients(model.named_parameters(), 7, 1, any_rank=lambda bad: True)


def test_nan_weights_are_never_written_to_a_checkpoint(tokenizer, tmp_path, one_thread):
    module = UnlearningModule(tiny_model(tokenizer), build_loss("ga"), lr=1e-2, warmup_epochs=0.0)
    dm = UnlearningDataModule(QA[:4], QA[4:], [], tokenizer, batch_size=2, uses_retain=False)
    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, plugins=[AtomicCheckpointIO()])
    trainer.fit(module, datamodule=dm)
    good = tmp_path / LAST
    trainer.save_checkpoint(good)
    stamp = good.stat().st_mtime_ns, good.read_bytes()
    with torch.no_grad():
        module.policy.lm_head.weight[0, 0] = float("inf")
    with pytest.raises(NonFiniteWeightsError, match="no checkpoint was written"):
        trainer.save_checkpoint(good)
    assert (good.stat().st_mtime_ns, good.read_bytes()) == stamp
    assert [p.name for p in tmp_path.iterdir()] == [LAST]


@pytest.mark.slow
@pytest.mark.parametrize("what, message", [("loss", "loss is nan at global step 3"),
                                           ("gradient", "Non-finite gradient at global step 3")])
def test_fit_stops_on_nan_and_keeps_the_last_finite_checkpoint(tiny_cache, tmp_path, monkeypatch, capsys, what,
                                                               message, one_thread):
    import unlearn.training.fit

    real = unlearn.training.fit.build_loss_from_config
    monkeypatch.setattr(unlearn.training.fit, "build_loss_from_config",
                        lambda cfg, **kw: Poisoned(real(cfg, **kw), 3, what))
    runs = tmp_path / "runs"
    code = main(["fit", "--config", TINY_CONFIG, f"run.cache_dir={tiny_cache}", f"run.output_dir={runs}",
                 "run.name=nan", "eval.enabled=false", "data.batch_size=1", "trainer.max_epochs=2",
                 "run.checkpoint_every_n_steps=1"])
    assert code == 1 and message in capsys.readouterr().err
    run_dir = runs / "nan"
    assert not (run_dir / "model").exists() and not (run_dir / "summary.json").exists()
    state = torch.load(run_dir / "checkpoints" / LAST, weights_only=True)
    assert state["global_step"] == 3
    weights = state["state_dict"]
    assert weights and all(k.startswith("policy.") for k in weights)  # the policy only, never the reference
    assert all(torch.isfinite(v).all() for v in weights.values())
    policy = copy.deepcopy(load_model(str(next((tiny_cache / "models").glob("builtin-*")) / "target")))
    policy.load_state_dict({k.removeprefix("policy."): v for k, v in weights.items()})
