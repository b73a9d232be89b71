"""``compare``'s robustness table: what each attack brought back, per run (docs/robustness.md).

A run attacked after ``fit`` (``attack.after_fit``) or by ``python -m unlearn attack`` keeps the
report in ``<run>/attack.json``, and ``fit`` also writes its headline numbers into ``summary.json``
(``robustness``). The table has one row per run and attack: the forget ROUGE-L (TOFU) after the
attack, its change beyond the retain model's (what the attack brought back that it would not have
taught a model that never saw the forget set; :mod:`unlearn.attacks.report`), and the attacked
model's forget quality. Runs of one setting over seeds show mean ± sd over the seeds that have the
number. Torch-free.
"""

from __future__ import annotations

import json
from pathlib import Path

from unlearn.attacks.report import headline
from unlearn.names import format_number
from unlearn.reporting.display import Display
from unlearn.reporting.stats import mean_sd

ATTACK_FILE = "attack.json"


def read_robustness(run_dir: str | Path, summary: dict) -> dict[str, float | None] | None:
    """The headline numbers of a run's attacks: ``attack.json``'s if the folder has one (it may be newer
    than the run, from ``python -m unlearn attack``), else ``summary.json``'s ``robustness``; None without.

    Raises:
        ValueError: ``attack.json`` is not a readable report.
    """
    path = Path(run_dir) / ATTACK_FILE
    if not path.is_file():
        return summary.get("robustness") or None
    try:
        report = json.loads(path.read_text())
        return headline(report)
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not an attack report ({type(err).__name__}: {err}); rerun `python -m unlearn "
                         f"attack` on the run, or move the file away to compare without it.") from err


def attacks_of(numbers: dict) -> list[str]:
    """The attack names in headline keys ``attack/<name>/...``, in order."""
    return list(dict.fromkeys(key.split("/")[1] for key in numbers if key.startswith("attack/")))


def _signed(text: str) -> str:
    return text if text.startswith(("-", "n/a", "nan")) else "+" + text


def _cell(values: list, digits: str, signed: bool = False) -> str:
    mean, sd, _ = mean_sd(values)
    if mean is None:
        return "n/a"
    text = format_number(mean, digits)
    text = _signed(text) if signed else text
    return text + (f" ± {format_number(sd, digits)}" if sd is not None else "")


def robustness_table(runs: dict[str, dict | list[dict]], display: Display) -> str | None:
    """Markdown: a row per run (or setting over seeds) and attack; None when no run was attacked.

    Args:
        runs: ``{name: summary}`` or ``{name: [summary per seed]}``, each summary with its ``robustness``
            numbers (:func:`read_robustness`) or without.
        display: The benchmark's display: which forget number to read.
    """
    forget, quality = display.attack_forget, display.attack_quality
    columns = ["run", "attack", f"{forget.title} after", f"{forget.title} change beyond retain"]
    columns += [f"{quality.title} after"] if quality else []
    lines = []
    for name, value in runs.items():
        summaries = value if isinstance(value, list) else [value]
        numbers = [s.get("robustness") or {} for s in summaries]
        label = f"{name} (n={len(summaries)})" if isinstance(value, list) else name
        for attack in dict.fromkeys(a for n in numbers for a in attacks_of(n)):
            def values(key: str) -> list:
                return [n.get(f"attack/{attack}/{key}") for n in numbers]

            cells = [label, attack, _cell(values(forget.key), forget.digits),
                     _cell(values(f"beyond_retain/{forget.key}"), forget.digits, signed=True)]
            cells += [_cell(values(quality.key), quality.digits)] if quality else []
            lines.append("| " + " | ".join(cells) + " |")
    if not lines:
        return None
    head = ["| " + " | ".join(columns) + " |", "|---|---|" + "---:|" * (len(columns) - 2)]
    return "\n".join(head + lines)


def robustness_notes(display: Display) -> str:
    """How to read the table, under it."""
    forget = display.attack_forget.title
    text = (f"Each attack is applied alike to the run's saved model and to the retain model. The {forget} after "
            f"the attack is the attacked model's; the change beyond retain is the model's change minus the retain "
            f"model's under the same attack: near 0, nothing hidden came back; positive, the attack restored what "
            f"unlearning had hidden.")
    if display.attack_quality:
        text += (f" The {display.attack_quality.title} after the attack compares the attacked model with the retain "
                 "model attacked alike.")
    return text + " n/a: the attack ran without a retain model (docs/robustness.md)."


def robustness_figure(runs: dict[str, dict | list[dict]], display: Display):
    """Grouped bars: per run, each attack's change of the forget measure beyond the retain model's: the mean over
    seeds, with the standard deviation as an error bar where a setting has two or more.

    Returns:
        A :class:`matplotlib.figure.Figure`, or None when no run was attacked.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    key = f"beyond_retain/{display.attack_forget.key}"
    numbers = {name: [s.get("robustness") or {} for s in (v if isinstance(v, list) else [v])] for name, v in runs.items()}
    attacks = list(dict.fromkeys(a for ns in numbers.values() for n in ns for a in attacks_of(n)))
    if not attacks:
        return None
    fig = Figure(figsize=(max(6.0, 1.2 * len(runs) + 2), 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    width = 0.8 / len(attacks)
    for j, attack in enumerate(attacks):
        heights, sds = [], []
        for ns in numbers.values():
            mean, sd, _ = mean_sd(n.get(f"attack/{attack}/{key}") for n in ns)
            heights.append(mean if mean is not None else 0.0)
            sds.append(sd or 0.0)
        xs = [i + (j - (len(attacks) - 1) / 2) * width for i in range(len(numbers))]
        ax.bar(xs, heights, width, label=attack, yerr=sds if any(sds) else None, capsize=3,
               error_kw={"elinewidth": 0.8, "ecolor": "0.3"})
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(numbers)), list(numbers), rotation=20, ha="right")
    ax.set_ylabel(f"{display.attack_forget.title}: change beyond retain")
    ax.set_title("What each attack brings back, beyond what it gives the retain model")
    ax.legend(fontsize=8)
    return fig
