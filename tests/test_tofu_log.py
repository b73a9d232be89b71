"""A retain model's TOFU evaluation log in place of the model (``model.retain_path=.../eval_log_aggregated.json``),
as the NPO code compares with one: numbers worked by the reference formulas, and end to end against the model."""

import json

import numpy as np
import pytest
from scipy import stats

from tests.helpers import TINY_CONFIG
from unlearn.cli import main
from unlearn.config.loading import load_config
from unlearn.errors import ConfigError, DataError
from unlearn.evaluation.job import evaluate
from unlearn.evaluation.results import EvalResult, SplitResult
from unlearn.evaluation.tofu_log import LOG_FILES, is_tofu_log, load_tofu_log
from unlearn.names import FORGET_QUALITY, MODEL_UTILITY
from unlearn.training.assets import resolve_assets

RNG = np.random.default_rng(3)


def entry(n, k=2):
    gt = RNG.uniform(0.1, 2.0, n)
    return {"avg_gt_loss": gt.tolist(), "gt_loss": (gt * 7).tolist(), "avg_paraphrased_loss": (gt + 0.2).tolist(),
            "average_perturb_loss": RNG.uniform(0.5, 3.0, (n, k)).tolist(),
            "rougeL_recall": RNG.uniform(0, 1, n).tolist(),
            "generated_text": [[f"[INST] q{i} [/INST]", f"gen {i}", f"answer {i}"] for i in range(n)]}


def tofu_log():
    return {"eval_log.json": entry(5), "eval_log_forget.json": entry(4, 3),
            "eval_real_author_wo_options.json": entry(3, 4), "eval_real_world_wo_options.json": entry(3, 4)}


def reference_numbers(log):
    """TOFU's utils.get_model_utility and the truth ratio of get_forget_quality, written out on the log."""
    out = {}
    for file, v in log.items():
        gt, para = np.array(v["avg_gt_loss"]), np.array(v["avg_paraphrased_loss"])
        pert = np.array(v["average_perturb_loss"])
        if "eval_log" in file:
            prob = np.mean(np.exp(-gt))
        else:
            prob = np.mean(np.exp(-gt) / (np.exp(-gt) + np.exp(-pert).sum(-1)))
        ratio = np.exp(pert.mean(-1) - para)
        tr = np.mean(np.minimum(ratio, 1 / ratio)) if "forget" in file else np.mean(np.maximum(0, 1 - 1 / ratio))
        out[file] = (prob, np.mean(v["rougeL_recall"]), tr, ratio)
    utility = stats.hmean([x for f, (p, r, t, _) in out.items() if "forget" not in f for x in (p, r, t)])
    return out, utility


def test_a_tofu_log_gives_the_reference_codes_numbers(tmp_path):
    log = tofu_log()
    path = tmp_path / "eval_log_aggregated.json"
    path.write_text(json.dumps(log))
    assert is_tofu_log(path) and not is_tofu_log("org/retain90") and not is_tofu_log(None)
    retain = load_tofu_log(path)
    numbers, utility = reference_numbers(log)
    summary = retain.summary()
    assert summary[FORGET_QUALITY] == 1.0 and summary[MODEL_UTILITY] == pytest.approx(utility, rel=1e-12)
    for name, file in LOG_FILES.items():
        prob, rouge, tr, ratio = numbers[file]
        assert summary[f"{'forget' if name == 'forget' else 'utility'}/" + ("" if name == "forget" else f"{name}_")
                       + "truth_ratio"] == pytest.approx(tr, rel=1e-12)
        assert retain.splits[name].figures()["probability"] == pytest.approx(prob, rel=1e-12)
        assert retain.splits[name].figures()["rouge_l"] == pytest.approx(rouge, rel=1e-12)
        assert np.allclose(retain.splits[name].truth_ratio, ratio, rtol=1e-12)
    assert retain.splits["forget"].generation[1] == "gen 1" and retain.splits["forget"].answer[1] == "answer 1"

    # A model compared with the log: the KS test of get_forget_quality on the two sides' forget truth ratios.
    n = 4
    model = EvalResult({name: SplitResult(name, np.arange(len(s.index)), s.question, s.answer, s.generation,
                                          s.answer_nll, s.base_nll + (0.5 if name == "forget" else 0.0),
                                          s.perturbed_nll, s.rouge_l)
                        for name, s in retain.splits.items()}).compare_with_retain(retain)
    ratios = np.exp(np.array(log["eval_log_forget.json"]["average_perturb_loss"]).mean(-1)
                    - np.array(log["eval_log_forget.json"]["avg_paraphrased_loss"]) - 0.5)
    assert len(ratios) == n
    assert model.forget_quality == pytest.approx(stats.ks_2samp(ratios, numbers["eval_log_forget.json"][3]).pvalue)


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("not json {", "not a JSON file"),
    (json.dumps({"eval_log_forget.json": {}}), r"lacks \['eval_log.json'"),
    (json.dumps([1, 2]), "not a TOFU evaluation log"),
])
def test_a_broken_log_is_refused_with_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "log.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_tofu_log(path)


def test_tofus_own_logs_keyed_by_question_index_read_as_the_npo_codes_lists(tmp_path):
    log = tofu_log()
    keyed = {file: {key: ({str(i): x for i, x in reversed(list(enumerate(v)))} if key != "generated_text" else v)
                    for key, v in entry.items()} for file, entry in log.items()}  # "10" after "9": sorted by int
    (tmp_path / "lists.json").write_text(json.dumps(log))
    (tmp_path / "keyed.json").write_text(json.dumps(keyed))
    assert load_tofu_log(tmp_path / "keyed.json").summary() == load_tofu_log(tmp_path / "lists.json").summary()


@pytest.mark.parametrize("change, message", [
    (lambda e: e["avg_paraphrased_loss"].pop(), r"4 questions in avg_gt_loss but \{'avg_paraphrased_loss': 3\}"),
    (lambda e: e.update(avg_gt_loss=[], avg_paraphrased_loss=[], average_perturb_loss=[], rougeL_recall=[],
                        generated_text=[]), "0 questions"),
    (lambda e: e.update(avg_gt_loss="1.0"), "must be a list"),
    (lambda e: e["average_perturb_loss"].__setitem__(0, ["x", "y", "z"]), "not numbers"),
])
def test_malformed_per_question_values_are_data_errors(tmp_path, change, message):
    log = tofu_log()
    change(log["eval_log_forget.json"])
    (tmp_path / "log.json").write_text(json.dumps(log))
    with pytest.raises(DataError, match=message):
        load_tofu_log(tmp_path / "log.json")


def test_a_log_without_the_losses_names_them(tmp_path):
    log = tofu_log()
    del log["eval_log.json"]["average_perturb_loss"]
    (tmp_path / "log.json").write_text(json.dumps(log))
    with pytest.raises(DataError, match=r"eval_log.json: the entry lacks \['average_perturb_loss'\]"):
        load_tofu_log(tmp_path / "log.json")


def test_only_tofu_format_benchmarks_take_a_log():
    with pytest.raises(ConfigError, match="only TOFU-format benchmarks read"):
        load_config([], ["data=muse_builtin", "model.retain_path=/x/eval_log_aggregated.json"])
    load_config([], ["model.retain_path=/x/eval_log_aggregated.json"])  # the built-in benchmark: TOFU's format


def as_tofu_log(per_question: dict) -> dict:
    """An evaluation's per-question values written as TOFU's evaluation writes its log."""
    return {LOG_FILES[name]: {"avg_gt_loss": v["answer_nll"], "avg_paraphrased_loss": v["base_nll"],
                              "average_perturb_loss": v["perturbed_nll"], "rougeL_recall": v["rouge_l"],
                              "generated_text": [list(t) for t in zip(v["question"], v["generation"], v["answer"])]}
            for name, v in per_question.items()}


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_the_retain_models_log_gives_the_forget_quality_the_retain_model_gives(tiny_cache, tmp_path):
    over = [f"run.cache_dir={tiny_cache}", f"run.output_dir={tmp_path}", "eval.mia_attacks=[]"]
    cfg = load_config([TINY_CONFIG], over)
    assets = resolve_assets(cfg)
    retain = evaluate(cfg, assets.retain, tmp_path / "retain")  # the retain model's own per-question values
    log = tmp_path / "retain_log" / "eval_log_aggregated.json"
    log.parent.mkdir()
    log.write_text(json.dumps(as_tofu_log(retain["per_question"])))

    direct = evaluate(cfg, assets.target, tmp_path / "direct")
    via_log = evaluate(load_config([TINY_CONFIG], over + [f"model.retain_path={log}"]), assets.target,
                       tmp_path / "via_log")
    assert via_log["summary"][FORGET_QUALITY] == direct["summary"][FORGET_QUALITY] is not None
    assert via_log["retain_summary"] == pytest.approx(direct["retain_summary"], rel=1e-9)
    assert via_log["info"]["retain_model"] == str(log)

    # fit reads the log before it makes its run folder: a missing one stops it with nothing left behind.
    missing = tmp_path / "nowhere" / "eval_log_aggregated.json"
    code = main(["fit", "--config", TINY_CONFIG, *over, "run.name=no_log", f"model.retain_path={missing}"])
    assert code == DataError.exit_code and not (tmp_path / "no_log").exists()

    # A log is not a model to quantise or relearn: the attacks run without the retain baseline instead of failing.
    code = main(["attack", "--config", TINY_CONFIG, *over, f"model.path={assets.target}", f"model.retain_path={log}",
                 "attack.name=quantize", "--out", str(tmp_path / "attacked")])
    report = json.loads((tmp_path / "attacked" / "attack.json").read_text())
    assert code == 0 and report["retain_model"] is None and report["attacks"]["quantize"]["model"]["after"]
