"""How the reports show each benchmark: column titles, number formats and axis labels.

``compare``'s table and figure, the TensorBoard trajectory and the sweep's collected tables draw a
run's forget measure against its utility, as :data:`unlearn.names.BENCHMARKS` names them for the
run's benchmark (``summary.json``'s ``evaluation.benchmark``; runs written before it was recorded are
TOFU runs). TOFU keeps the titles its reports always had; MUSE's numbers are ×100 and PrivLeak is in
percent, as :mod:`unlearn.evaluation.muse_results` stores them. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

from unlearn.names import (BENCHMARKS, FORGET_ACCURACY, FORGET_QUALITY, GENERAL_ACCURACY, KNOWMEM_FORGET,
                           KNOWMEM_RETAIN, MODEL_UTILITY, PRIVLEAK, VERBMEM, BenchmarkKeys, format_number, metric_key,
                           mia_key)

TOFU_ROUGE_L = metric_key("forget", "rouge_l")


@dataclass(frozen=True)
class Measure:
    """One number of a record as a report shows it: its title, its record key and its format."""

    title: str
    key: str
    digits: str = ".3f"

    def cell(self, record: dict) -> str:
        """The record's value as a table cell (``n/a`` when it lacks one)."""
        return format_number(record.get(self.key), self.digits)


@dataclass(frozen=True)
class Display:
    """What the reports show of one benchmark.

    Attributes:
        keys: The benchmark's keys (:class:`unlearn.names.BenchmarkKeys`).
        forget, utility, selection: Its headline forget measure, its utility and the number epochs are
            ranked by, with the titles the tables give them.
        short: Short names of forget, utility and selection (``FQ``, ``MU``, ``FQ``) for column titles.
        before, after: ``compare``'s further columns, before and after the utility column.
        collected: The sweep table's further columns (``results.md``), after ``<utility> × start``.
        optional: Sweep columns shown only when some setting has the number (membership inference).
        repetition: The forget generations' repetition, collected for the last epoch too (None: no text).
        distinct: The fluency drawn over steps in the figure's last panel (None: no generations).
        forget_axis, utility_axis: Axis labels of the trade-off panel.
        log_forget: Whether the forget axis is logarithmic (TOFU's forget quality, a p-value).
        second: A second trade-off panel against utility (MUSE's PrivLeak, 0 being the retain model).
        attack_forget: The forget number the robustness table reads after each attack (and beyond retain).
        attack_quality: The attacked model's forget quality (TOFU), None where the benchmark has none.
        table_note: How to read the benchmark's numbers, under ``compare``'s table.
    """

    keys: BenchmarkKeys
    forget: Measure
    utility: Measure
    selection: Measure
    short: tuple[str, str, str]
    before: tuple[Measure, ...] = ()
    after: tuple[Measure, ...] = ()
    collected: tuple[Measure, ...] = ()
    optional: tuple[Measure, ...] = ()
    repetition: Measure | None = None
    distinct: Measure | None = None
    forget_axis: str = ""
    utility_axis: str = ""
    log_forget: bool = False
    second: Measure | None = None
    attack_forget: Measure | None = None
    attack_quality: Measure | None = None
    table_note: str = ""

    @property
    def selection_phrase(self) -> str:
        """``the highest forget quality``, ``the PrivLeak closest to 0``, ``the lowest forget accuracy``."""
        title = self.selection.title
        return {"high": f"the highest {title}", "low": f"the lowest {title}",
                "zero": f"the {title} closest to 0"}[self.keys.selection_goal]


_MIA_LOSS = Measure("MIA LOSS AUC", mia_key("loss"))
_MIA_MIN_K = Measure("MIA Min-K% AUC", mia_key("min_k"))
_FQ = Measure("forget quality", FORGET_QUALITY, "g")
_TOFU_ROUGE = Measure("forget ROUGE-L", TOFU_ROUGE_L)
_TOFU_DISTINCT = Measure("forget distinct-2", metric_key("forget", "distinct_2"))
_TOFU_REPETITION = Measure("forget repetition", metric_key("forget", "repetition"), ".2f")
_TOFU_SHORT = Measure("forget short answers", metric_key("forget", "short_answers"), ".2f")
_VERBMEM = Measure("VerbMem", VERBMEM, ".2f")
_KNOWMEM_FORGET = Measure("KnowMem forget", KNOWMEM_FORGET, ".2f")
_PRIVLEAK = Measure("PrivLeak", PRIVLEAK, ".2f")
_FORGET_ACCURACY = Measure("forget accuracy", FORGET_ACCURACY)

DISPLAYS = {
    "tofu": Display(
        BENCHMARKS["tofu"], _FQ, Measure("model utility", MODEL_UTILITY), _FQ, ("FQ", "MU", "FQ"),
        after=(_TOFU_ROUGE, _TOFU_DISTINCT, _TOFU_REPETITION, _TOFU_SHORT),
        collected=(_TOFU_ROUGE, Measure("forget repetition", _TOFU_REPETITION.key)),
        optional=(_MIA_LOSS, _MIA_MIN_K),
        repetition=_TOFU_REPETITION, distinct=Measure("forget-split distinct-2", _TOFU_DISTINCT.key),
        forget_axis="forget quality (KS-test p-value, log)", utility_axis="model utility", log_forget=True,
        attack_forget=_TOFU_ROUGE, attack_quality=_FQ,
        table_note="Fluency (distinct-2, repetition, the share of answers under two words) is measured on the forget "
                   "split's greedy generations and is not part of model utility. "),
    "muse": Display(
        BENCHMARKS["muse"], _VERBMEM, Measure("KnowMem retain", KNOWMEM_RETAIN, ".2f"), _PRIVLEAK,
        ("VerbMem", "KnowMem retain", "PrivLeak"),
        before=(_KNOWMEM_FORGET,), after=(_PRIVLEAK, _MIA_LOSS),
        collected=(_KNOWMEM_FORGET, _PRIVLEAK), optional=(_MIA_LOSS,),
        repetition=Measure("VerbMem repetition", f"{VERBMEM}_repetition", ".2f"),
        distinct=Measure("VerbMem distinct-2", f"{VERBMEM}_distinct_2"),
        forget_axis="VerbMem (ROUGE-L ×100 on forget texts)", utility_axis="KnowMem retain (ROUGE-L ×100)",
        second=_PRIVLEAK, attack_forget=_VERBMEM,
        table_note="VerbMem and KnowMem are ROUGE-L ×100 (lower VerbMem and KnowMem forget: more forgotten); PrivLeak "
                   "is in percent, 0 being the retain model's; MIA LOSS AUC is the loss attack's forget-vs-holdout AUC "
                   "(0.5: no membership signal). "),
    "multiple_choice": Display(
        BENCHMARKS["multiple_choice"], _FORGET_ACCURACY, Measure("general accuracy", GENERAL_ACCURACY),
        _FORGET_ACCURACY, ("forget accuracy", "general accuracy", "forget accuracy"),
        forget_axis="forget accuracy", utility_axis="general accuracy", attack_forget=_FORGET_ACCURACY,
        table_note="Accuracies are the fraction of questions whose most likely choice is the right one (chance: one "
                   "over the number of choices); lower forget accuracy is more forgotten. "),
}


def display_of(benchmark: BenchmarkKeys | str) -> Display:
    """The display of a benchmark, given by its keys or its name."""
    return DISPLAYS[benchmark if isinstance(benchmark, str) else benchmark.name]
