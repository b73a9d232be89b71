"""The sections a sweep file's ``report`` adds to results.md: the seeds its measured spread asks for, and chosen
settings epoch by epoch, on summaries written by hand."""

import json
import math

import pytest

from tests.helpers import TINY_CONFIG
from tests.test_sweep_runner import fake_summary
from unlearn.cli import main
from unlearn.experiments.collect import collect
from unlearn.experiments.report import check_report, resolved_difference, seeds_for
from unlearn.experiments.runner import run_dir
from unlearn.experiments.sweep_file import SweepFileError, parse_sweep

# forget quality, model utility of each run: npo and kl keep their utility; ga collapses on every seed (its last
# utility is below half its starting 0.8), so its spread must not count.
VALUES = {"npo": [(0.1, 0.7), (0.2, 0.8), (0.6, 0.9)], "kl": [(0.3, 0.75), (0.3, 0.75), (0.3, 0.78)],
          "ga": [(0.9, 0.1), (0.5, 0.2), (0.05, 0.3)]}


def test_seeds_needed_and_the_difference_resolved_on_hand_worked_numbers():
    z = 1.959964 + 0.841621  # z of 0.975 and of 0.8
    # sd 0.1, difference 0.2: 2 z² 0.01 / 0.04 = 3.92 -> 4 seeds; three seeds resolve z · 0.1 · √(2/3) = 0.229.
    assert seeds_for(0.1, 0.2) == 4 == math.ceil(2 * z ** 2 * 0.01 / 0.04)
    assert resolved_difference(0.1, 3) == pytest.approx(z * 0.1 * math.sqrt(2 / 3), rel=1e-6)
    assert seeds_for(0.2, 0.2) == 16 and seeds_for(0.0, 0.1) == 2  # a spread of 0 still needs two to have an sd


def write_sweep(tmp_path, report):
    s = parse_sweep({"base": {"configs": [TINY_CONFIG]}, "seeds": [1, 2, 3], "report": report,
                     "groups": {"main": {"axes": {"loss.name": ["npo", "kl", "ga"]}}}}, tmp_path / "s.yaml")
    out = tmp_path / "out"
    for run in s.runs():
        fq, mu = VALUES[run.point][run.seed - 1]
        run_dir(out, run).mkdir(parents=True)
        (run_dir(out, run) / "summary.json").write_text(json.dumps(fake_summary(fq, mu)))
    return s, out


def test_collect_writes_the_seeds_needed_and_the_epoch_by_epoch_sections(tmp_path):
    s, out = write_sweep(tmp_path, {"seeds_needed": {"forget quality": 0.2, "model utility": 0.03},
                                    "history": {"groups": ["main"], "metrics": ["forget/forget_quality",
                                                                                "utility/model_utility", "steps"]}})
    collect(s, s.runs(), out, compare_groups=False)
    md = (out / "results.md").read_text()
    # forget quality: npo's sd is sqrt(0.07) = 0.265, kl's 0; pooled sqrt(0.035) = 0.187, median 0.132; three
    # seeds resolve 2.8016 · 0.187 · √(2/3) = 0.428; Δ 0.2 takes 2 · 7.849 · 0.035 / 0.04 = 13.7 -> 14 seeds
    # (7 at the median sd: 2 · 7.849 · 0.0175 / 0.04 = 6.9).
    assert "| forget quality | 2 | 0.132 | 0.187 | 0.428 (n = 3) | 0.2: 14 (7 at the median sd) |" in md
    # model utility: npo's sd 0.1, kl's 0.0173; pooled sqrt((0.01 + 0.0003) / 2) = 0.0718; Δ 0.03 takes
    # 2 · 7.849 · 0.00515 / 0.0009 = 89.8 -> 90 seeds (at the median 0.0587: 60.02 -> 61).
    assert "| model utility | 2 | 0.0587 | 0.0718 | 0.164 (n = 3) | 0.03: 90 (61 at the median sd) |" in md
    assert "Left out, collapsed on every seed: ga." in md
    assert md.index("## Seeds needed") < md.index("## Epoch by epoch")
    # Epoch by epoch: each setting's mean ± sd at epochs 0 and 1 (steps 0 and 5); a key no display names is shown
    # by its key, and one the records lack is n/a.
    assert "### main: npo (3 runs)" in md and "| step (epoch) | 0 (0) | 5 (1) |" in md
    assert "| forget quality | 0.01 ± 0 | 0.3 ± 0.265 |" in md
    assert "| model utility | 0.800 ± 0.000 | 0.800 ± 0.100 |" in md and "| steps | n/a | n/a |" in md


def test_one_epoch_list_picks_the_columns_and_a_setting_without_runs_is_skipped(tmp_path):
    s, out = write_sweep(tmp_path, {"history": {"groups": ["main"], "epochs": [1]}})
    for run in s.runs():
        if run.point == "kl":
            (run_dir(out, run) / "summary.json").unlink()
    collect(s, s.runs(), out, compare_groups=False)
    md = (out / "results.md").read_text()
    assert "| step (epoch) | 5 (1) |" in md and "### main: kl" not in md and "## Seeds needed" not in md
    # Without a metric list: the benchmark's headline numbers, in its titles (TOFU's forget quality first).
    npo = md[md.index("### main: npo"):md.index("### main: ga")]
    assert [line.split(" |")[0] for line in npo.splitlines()[4:]][:3] == ["| forget quality", "| model utility",
                                                                           "| forget ROUGE-L"]


def test_numbers_few_settings_have_and_runs_that_cannot_be_read_leave_the_report_standing(tmp_path):
    s, out = write_sweep(tmp_path, {"seeds_needed": {"best FQ at MU ≥ 0.9×": 0.2, "no such number": 0.1},
                                    "history": {"groups": ["main"]}})
    # npo keeps 0.9x its starting utility on no seed (0.7, 0.1, 0.1 of 0.8): its best FQ has no value and no sd, so
    # only kl's spread counts, and n is kl's 2 (npo's 0 must not pull it down). A finished kl run without an
    # evaluation can be neither collected nor drawn epoch by epoch.
    for run in s.runs():
        if run.point == "npo" and run.seed > 1:
            summary = fake_summary(0.5, 0.1)
            (run_dir(out, run) / "summary.json").write_text(json.dumps(summary))
        if run.point == "kl" and run.seed == 3:
            (run_dir(out, run) / "summary.json").write_text(json.dumps({"loss": "kl", "evaluation": None}))
    collect(s, s.runs(), out, compare_groups=False)
    md = (out / "results.md").read_text()
    assert "| best FQ at MU ≥ 0.9× | 1 | 0 | 0 | 0 (n = 2) |" in md  # kl's two collected runs: equal, sd 0
    assert "| no such number | 0 | | | | no setting has two runs with this number |" in md
    assert "### main: kl (2 runs)" in md and "### main: npo (3 runs)" in md


@pytest.mark.parametrize("report, message", [
    ({"seeds": {}}, "report takes"),
    ({"seeds_needed": {"model utility": 0}}, "positive difference"),
    ({"seeds_needed": ["model utility"]}, "positive difference"),
    ({"history": {"epochs": [1]}}, "takes groups"),
    ({"history": {"groups": ["long"]}}, r"names group\(s\) \['long'\]"),
    ({"history": {"groups": ["runs"], "epochs": 10}}, "epochs must be a list of int"),
    ({"history": {"groups": "runs"}}, "groups must be a list of str"),
])
def test_report_mistakes_stop_the_sweep_before_anything_runs(tmp_path, capsys, report, message):
    path = tmp_path / "mine.yaml"
    path.write_text(json.dumps({"base": {"configs": [TINY_CONFIG]}, "axes": {"loss.name": ["ga"]},
                                "report": report}))
    with pytest.raises(SweepFileError, match=message):
        check_report(parse_sweep(json.loads(path.read_text()), path))
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "report" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_a_number_fewer_runs_have_says_how_many(tmp_path):
    s, out = write_sweep(tmp_path, {"history": {"groups": ["main"], "metrics": ["forget/forget_quality",
                                                                                "forget/short_answers"]}})
    # kl's seed 3 stopped at epoch 0 (no epoch 1); its seeds 2 and 3 measured short answers, seed 1 has NaN (left out
    # of the mean, so not counted either).
    for run in s.runs():
        if run.point == "kl":
            summary = fake_summary(*VALUES["kl"][run.seed - 1])
            history = summary["evaluation"]["history"]
            if run.seed == 3:
                del history[1]
            for record in history:
                record["forget/short_answers"] = 0.25 * run.seed if run.seed > 1 else float("nan")
            (run_dir(out, run) / "summary.json").write_text(json.dumps(summary))
    collect(s, s.runs(), out, compare_groups=False)
    md = (out / "results.md").read_text()
    kl = md[md.index("### main: kl (3 runs)"):md.index("### main: ga")]
    assert "| forget quality | 0.01 ± 0 | 0.3 ± 0 (n = 2) |" in kl
    assert "| forget short answers | 0.62 ± 0.18 (n = 2) | 0.50 (n = 1) |" in kl  # seed 2 alone at epoch 1
    npo = md[md.index("### main: npo (3 runs)"):md.index("### main: kl")]
    assert "(n = " not in npo
