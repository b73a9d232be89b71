"""Evaluation schedule, collapse stopping and model selection, driven by scripted evaluation numbers."""

import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from tests.helpers import tiny_model, tiny_tokenizer
from unlearn.callbacks.collapse import UtilityCollapseStopping
from unlearn.callbacks.evaluation import BenchmarkEvaluation
from unlearn.callbacks.selection import BestEpochSelection, selection_key
from unlearn.names import FORGET_QUALITY as FQ
from unlearn.names import MODEL_UTILITY as MU
from unlearn.names import SELECTION_RULES

pytestmark = pytest.mark.usefixtures("one_thread")


class ScriptedEvaluation(BenchmarkEvaluation):
    """BenchmarkEvaluation's real schedule and state, with scripted numbers instead of running a model."""

    def __init__(self, utility: dict, quality: dict | None = None, every_n_epochs: int = 1):
        super().__init__(evaluator=None, every_n_epochs=every_n_epochs, num_logged_samples=0)
        self.utility, self.quality = utility, quality or {}
        self.weights = {}  # epoch -> the policy's weights when it was evaluated

    def evaluate(self, trainer, pl_module, epoch):
        record = {"epoch": epoch, "step": trainer.global_step, MU: self.utility[epoch], FQ: self.quality.get(epoch)}
        self.records.append(record)
        self.weights[epoch] = {k: v.detach().clone() for k, v in pl_module.policy.state_dict().items()}
        return record


class LinearModule(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.policy = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.policy(batch).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(torch.randn(4, 2), batch_size=2)


class TinyLlamaModule(LinearModule):
    """A Hugging Face policy, so the selection callback can save it."""

    def __init__(self, tokenizer):
        super().__init__()
        self.policy = tiny_model(tokenizer)

    def training_step(self, batch, batch_idx):
        return self.policy(input_ids=batch, labels=batch).loss

    def train_dataloader(self):
        return DataLoader(torch.randint(0, 100, (4, 6)), batch_size=2)


def trainer(max_epochs, callbacks, **kwargs):
    return L.Trainer(max_epochs=max_epochs, callbacks=callbacks, accelerator="cpu", devices=1, logger=False,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, **kwargs)


def test_evaluates_at_epoch_zero_every_n_epochs_and_at_the_end():
    evaluation = ScriptedEvaluation({e: 1.0 for e in range(6)}, every_n_epochs=2)
    trainer(5, [evaluation]).fit(LinearModule())
    assert [r["epoch"] for r in evaluation.records] == [0, 2, 4, 5]
    assert evaluation.records[0]["step"] == 0 and evaluation.records[1]["step"] == 4


def test_stops_when_utility_falls_below_the_fraction_of_its_start():
    """Start 0.8, fraction 0.5: threshold 0.4; 0.39 at epoch 3 stops the run there."""
    evaluation = ScriptedEvaluation({0: 0.8, 1: 0.7, 2: 0.5, 3: 0.39, 4: 0.3, 5: 0.3})
    collapse = UtilityCollapseStopping(evaluation, fraction=0.5)
    run = trainer(6, [evaluation, collapse])
    run.fit(LinearModule())
    assert collapse.baseline == 0.8 and collapse.threshold == pytest.approx(0.4)
    assert collapse.stopped_epoch == 3 and run.current_epoch == 3
    assert [r["epoch"] for r in evaluation.records] == [0, 1, 2, 3]
    assert "0.39" in collapse.reason and "0.5 x" in collapse.reason


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_stops_on_a_non_finite_utility(bad):
    evaluation = ScriptedEvaluation({0: 0.8, 1: bad, 2: 0.8})
    collapse = UtilityCollapseStopping(evaluation, fraction=0.0)  # 0: only non-finite values stop
    trainer(3, [evaluation, collapse]).fit(LinearModule())
    assert collapse.stopped_epoch == 1 and "not finite" in collapse.reason


def test_no_collapse_runs_every_epoch():
    evaluation = ScriptedEvaluation({0: 0.8, 1: 0.41, 2: 0.40, 3: 0.9})
    collapse = UtilityCollapseStopping(evaluation, fraction=0.5)
    trainer(3, [evaluation, collapse]).fit(LinearModule())
    assert collapse.stopped_epoch is None and [r["epoch"] for r in evaluation.records] == [0, 1, 2, 3]


@pytest.mark.parametrize("fraction", [-0.1, 1.5, "half", True, math.nan])
def test_collapse_arguments_are_validated(fraction):
    with pytest.raises(ValueError, match="fraction"):
        UtilityCollapseStopping(ScriptedEvaluation({}), fraction=fraction)


def test_callbacks_need_an_evaluation_with_records():
    with pytest.raises(TypeError, match="records"):
        UtilityCollapseStopping(object())
    with pytest.raises(ValueError, match="rule"):
        BestEpochSelection(ScriptedEvaluation({}), rule="best")
    with pytest.raises(ValueError, match="every_n_epochs"):
        BenchmarkEvaluation(None, every_n_epochs=0)


def test_collapse_state_round_trip():
    evaluation = ScriptedEvaluation({0: 0.8, 1: 0.2})
    collapse = UtilityCollapseStopping(evaluation)
    trainer(2, [evaluation, collapse]).fit(LinearModule())
    restored = UtilityCollapseStopping(ScriptedEvaluation({}))
    restored.load_state_dict(collapse.state_dict())
    assert (restored.baseline, restored.stopped_epoch, restored.reason, restored.last_checked_epoch) == \
        (0.8, 1, collapse.reason, 1)


def test_collapse_state_is_keyed_by_what_it_watches_and_a_changed_fraction_is_said(caplog):
    evaluation = ScriptedEvaluation({0: 0.8, 1: 0.7, 2: 0.7})
    collapse = UtilityCollapseStopping(evaluation, fraction=0.5)
    assert "utility/model_utility" in collapse.state_key
    assert "forget/forget_quality" in BestEpochSelection(evaluation).state_key
    assert collapse.state_key != UtilityCollapseStopping(evaluation, monitor="forget/forget_quality").state_key
    trainer(2, [evaluation, collapse]).fit(LinearModule())
    stricter = UtilityCollapseStopping(ScriptedEvaluation({}), fraction=0.9)
    with caplog.at_level("WARNING"):
        stricter.load_state_dict(collapse.state_dict())
    assert "this run uses 0.9 x" in caplog.text
    assert stricter.baseline == 0.8 and stricter.threshold == pytest.approx(0.72)


def test_resumed_run_keeps_the_baseline_from_before_unlearning(tmp_path):
    """Start 1.0, then 0.9, 0.8; checkpoint; 0.45 at epoch 3 must stop (threshold 0.5 from epoch 0).

    Had the resumed run taken its baseline afresh (0.8 at epoch 2), 0.45 would pass its threshold 0.4.
    """
    script = {0: 1.0, 1: 0.9, 2: 0.8, 3: 0.45, 4: 0.45, 5: 0.45}
    first = ScriptedEvaluation(script)
    run = trainer(2, [first, UtilityCollapseStopping(first)])
    run.fit(LinearModule())
    run.save_checkpoint(tmp_path / "epoch2.ckpt")

    resumed = ScriptedEvaluation(script)
    collapse = UtilityCollapseStopping(resumed)
    trainer(6, [resumed, collapse]).fit(LinearModule(), ckpt_path=tmp_path / "epoch2.ckpt")
    assert [r["epoch"] for r in resumed.records] == [0, 1, 2, 3]  # epoch 0 not evaluated again
    assert collapse.baseline == 1.0 and collapse.stopped_epoch == 3


SCRIPT_MU = {0: 0.8, 1: 0.75, 2: 0.6, 3: 0.3}
SCRIPT_FQ = {0: 1e-5, 1: 0.01, 2: 0.2, 3: 0.9}


def test_selection_key_ranks_epochs_by_rule():
    """Threshold 0.4: epoch 3's forget quality 0.9 does not count, its utility 0.3 is below it."""
    records = [{"epoch": e, MU: SCRIPT_MU[e], FQ: SCRIPT_FQ[e]} for e in (1, 2, 3)]
    best = {rule: max(records, key=lambda r: selection_key(r, rule, 0.4))["epoch"]
            for rule in SELECTION_RULES}
    assert best == {"forget_quality": 2, "model_utility": 1, "last": 3}
    nan_utility = {"epoch": 4, MU: math.nan, FQ: 1.0}
    assert selection_key(nan_utility, "forget_quality", 0.4) < selection_key(records[2], "forget_quality", 0.4)


@pytest.mark.parametrize("rule, expected", [("forget_quality", 2), ("model_utility", 1), ("last", 3)])
def test_selection_keeps_the_chosen_epoch_and_its_weights(tmp_path, rule, expected):
    from transformers import AutoModelForCausalLM

    tokenizer = tiny_tokenizer()
    evaluation = ScriptedEvaluation(SCRIPT_MU, SCRIPT_FQ)
    selection = BestEpochSelection(evaluation, rule, 0.5, tmp_path / "selected")
    trainer(3, [evaluation, selection]).fit(TinyLlamaModule(tokenizer))
    assert selection.selected["epoch"] == expected and f"epoch {expected}" in selection.reason
    if rule == "last":  # the final weights are the selection: nothing written
        assert selection.saved_epoch is None and not (tmp_path / "selected").exists()
        return
    assert selection.saved_epoch == expected
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "selected").state_dict()
    for name, value in evaluation.weights[expected].items():
        torch.testing.assert_close(saved[name], value)
    assert not torch.equal(evaluation.weights[expected]["model.embed_tokens.weight"],
                           evaluation.weights[3]["model.embed_tokens.weight"])


def test_selection_without_an_eligible_epoch_takes_the_highest_utility():
    evaluation = ScriptedEvaluation({0: 0.8, 1: 0.3, 2: 0.35, 3: 0.1}, {1: 0.5, 2: 0.1, 3: 0.9})
    selection = BestEpochSelection(evaluation, "forget_quality", 0.5)
    trainer(3, [evaluation, selection]).fit(LinearModule())
    assert selection.selected["epoch"] == 2 and "no evaluated epoch kept" in selection.reason
    restored = BestEpochSelection(ScriptedEvaluation({}), "forget_quality", 0.5)
    restored.load_state_dict(selection.state_dict())
    assert restored.selected == selection.selected and restored.last_checked_epoch == 3
