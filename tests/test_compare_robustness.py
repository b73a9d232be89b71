"""``compare``'s robustness table: runs with an ``attack.json`` (or ``robustness`` in ``summary.json``) get, per
attack, the forget ROUGE-L after it, its change beyond the retain model's and the attacked model's forget quality."""

import json

import pytest

from tests.test_compare import record, write_run
from unlearn.attacks.report import attack_entry, headline
from unlearn.names import FORGET_QUALITY, MODEL_UTILITY, SUMMARY_KEYS
from unlearn.reporting.compare import NotARunError, compare

ROUGE = "forget/rouge_l"


def summary(rouge, quality=None, utility=0.6):
    """An ``EvalResult.summary()``: every TOFU number 0.5 but the forget ROUGE-L, forget quality and utility."""
    return {**{k: 0.5 for k in SUMMARY_KEYS}, ROUGE: rouge, FORGET_QUALITY: quality, MODEL_UTILITY: utility}


def report(relearned_rouge=0.5):
    """``attack.json`` of two attacks: relearning with the retain baseline, quantisation without it."""
    # Relearning: the model's ROUGE-L 0.2 -> relearned_rouge, the retain model's 0.3 -> 0.35 (it learns the few
    # rows too); beyond retain: (relearned_rouge - 0.2) - 0.05.
    relearn = attack_entry("relearn on 10 forget rows", {"steps": 5}, summary(0.2, 0.001),
                           summary(relearned_rouge, 0.01), summary(0.3, 1.0), summary(0.35, 0.9))
    quantize = attack_entry("4-bit weights", {"bits": 4}, summary(0.2), summary(0.3), None, None)
    return {"model": "runs/ga/model", "retain_model": "retain", "forget_split": "forget10",
            "attacks": {"relearn": relearn, "quantize": quantize}}


def history():
    return [record(0, 0.007, 0.75), record(1, 0.1, 0.7)]


def test_attacked_runs_get_a_robustness_table(tmp_path):
    ga = write_run(tmp_path / "ga_run", "ga", history(), 1)
    (ga / "attack.json").write_text(json.dumps(report()))
    npo = write_run(tmp_path / "npo_run", "npo", history(), 1)
    table = compare([ga, npo], tmp_path / "out")["table"].read_text()
    section = table[table.index("## Robustness"):]
    assert ("| run | attack | forget ROUGE-L after | forget ROUGE-L change beyond retain | forget quality after |\n"
            "|---|---|---:|---:|---:|") in section
    # Beyond retain: (0.5 - 0.2) - (0.35 - 0.3) = 0.25; quantisation ran without a retain model.
    assert "| ga_run | relearn | 0.500 | +0.250 | 0.01 |" in section
    assert "| ga_run | quantize | 0.300 | n/a | n/a |" in section
    assert "npo_run" not in section  # never attacked: no rows
    assert "change beyond retain is the model's change minus the retain model's" in section
    assert table.index("## Robustness") < table.index("![forget quality vs model utility]")
    # The main table is as without attacks.
    assert "| ga_run | ga | forget10 | 0.1 | 0.700 (0.93×) |" in table
    # A figure of the same changes beside it.
    assert "![what each attack brings back](robustness.png)" in section
    assert (tmp_path / "out" / "robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_summary_robustness_numbers_serve_when_the_report_file_is_gone(tmp_path):
    folder = write_run(tmp_path / "npo_run", "npo", history(), 1)
    data = json.loads((folder / "summary.json").read_text())
    data["robustness"] = headline(report(0.4))
    (folder / "summary.json").write_text(json.dumps(data))
    table = compare([folder], tmp_path / "out")["table"].read_text()
    assert "| npo_run | relearn | 0.400 | +0.150 | 0.01 |" in table


def test_attacked_seeds_show_mean_and_sd(tmp_path):
    for seed, rouge in ((1, 0.5), (2, 0.6)):
        folder = write_run(tmp_path / f"npo_seed{seed}", "npo", history(), 1)
        (folder / "attack.json").write_text(json.dumps(report(rouge)))
    table = compare([tmp_path / "npo_seed1", tmp_path / "npo_seed2"], tmp_path / "out")["table"].read_text()
    # ROUGE-L 0.5, 0.6: 0.550 ± 0.071; beyond retain 0.25, 0.35: +0.300 ± 0.071; forget quality 0.01 both.
    assert "| npo (n=2) | relearn | 0.550 ± 0.071 | +0.300 ± 0.071 | 0.01 ± 0 |" in table


def test_the_robustness_figure_has_the_mean_over_seeds_and_an_error_bar_of_their_sd():
    from unlearn.reporting.display import display_of
    from unlearn.reporting.robustness import robustness_figure

    seeds = [{"robustness": headline(report(rouge))} for rouge in (0.5, 0.6)]
    fig = robustness_figure({"npo": seeds, "ga": [{"robustness": headline(report(0.5))}]}, display_of("tofu"))
    from matplotlib.container import BarContainer

    relearn, quantize = [c for c in fig.axes[0].containers if isinstance(c, BarContainer)]
    assert [round(bar.get_height(), 6) for bar in relearn] == [0.3, 0.25]  # beyond retain: mean of 0.25 and 0.35
    (caps, (bars,)) = relearn.errorbar.lines[1:]
    segments = bars.get_segments()
    assert [round(seg[1][1] - seg[0][1], 6) for seg in segments] == [round(2 * 0.0707107, 6), 0.0]  # ± sd; one seed: 0
    assert quantize.errorbar is None  # no retain baseline: no numbers to spread


def test_runs_without_attacks_have_no_robustness_section_and_a_broken_report_is_refused(tmp_path):
    folder = write_run(tmp_path / "ga_run", "ga", history(), 1)
    assert "Robustness" not in compare([folder], tmp_path / "out")["table"].read_text()
    (folder / "attack.json").write_text(json.dumps({"attacks": {"relearn": {"model": {}}}}))
    with pytest.raises(NotARunError, match="attack.json is not an attack report"):
        compare([folder], tmp_path / "again")
