"""Which benchmark a run is evaluated on, and its evaluator.

A data source names its benchmark: the built-in TOFU-format benchmark and TOFU itself are evaluated
with TOFU's metrics (and membership inference where holdout authors exist), MUSE corpora with
MUSE's, the multiple-choice sets with accuracy. Every evaluator is called the same way
(``evaluator(model, rank=, world_size=)``, on every rank) and returns a result with the same
members (``summary``, ``fluency``, ``samples``, ``compare_with_retain``, ``to_dict``), so the
evaluation callbacks, the stored retain results and the reports serve every benchmark alike;
:data:`unlearn.names.BENCHMARKS` says which numbers are its utility and its forget measure.
"""

from __future__ import annotations

from unlearn.config.schema import DataConfig, EvalConfig
from unlearn.data.formatting import PromptFormat
from unlearn.errors import ConfigError
from unlearn.names import BENCHMARKS, BenchmarkKeys

# data.source -> benchmark; "files" (the user's own forget/retain sets) has none.
SOURCE_BENCHMARKS = {"builtin": "tofu", "tofu": "tofu", "muse": "muse", "muse_builtin": "muse",
                     "wmdp": "multiple_choice", "hazard_builtin": "multiple_choice"}

# Why neither fit nor eval runs a benchmark's evaluation on data.source=files.
NO_BENCHMARK = ("TOFU's metrics need its perturbed answers and its real-authors and world-facts splits, and MUSE's "
                "its QA and holdout sets, which your own files (data.source=files) do not have.")


def benchmark_of(source: str) -> BenchmarkKeys | None:
    """The benchmark a ``data.source`` is evaluated on; None for the user's own files."""
    name = SOURCE_BENCHMARKS.get(source)
    return None if name is None else BENCHMARKS[name]


def build_evaluator(source, data: DataConfig, tokenizer, prompt_format: str | PromptFormat, settings: EvalConfig):
    """The evaluator of ``data.source``'s benchmark over the files at ``source`` (``eval.*`` in ``settings``).

    Raises:
        ConfigError: the data source has no benchmark (``data.source=files``).
    """
    benchmark = benchmark_of(data.source)
    if benchmark is None:
        raise ConfigError(f"data.source={data.source} has no benchmark to evaluate. {NO_BENCHMARK}")
    if benchmark.name == "tofu":
        from unlearn.data.sources import load_holdout
        from unlearn.evaluation.evaluator import TofuEvaluator, load_eval_splits

        splits = load_eval_splits(source, data.forget_split, settings.max_rows)
        holdout = load_holdout(source, data.forget_split) if settings.mia_attacks else None
        return TofuEvaluator(tokenizer, splits, prompt_format, data.max_length, settings.max_new_tokens,
                             settings.batch_size, holdout=holdout, mia_attacks=tuple(settings.mia_attacks),
                             mia_k=settings.mia_k)
    if benchmark.name == "muse":
        from unlearn.data.muse import load_muse_eval
        from unlearn.evaluation.muse import MuseEvaluator

        return MuseEvaluator(tokenizer, load_muse_eval(source), data.max_length, settings.batch_size,
                             mia_attacks=tuple(settings.mia_attacks), mia_k=settings.mia_k)
    if benchmark.name == "multiple_choice":
        from unlearn.evaluation.multiple_choice import MultipleChoiceEvaluator

        sets = {name: rows[:settings.max_rows] for name, rows in choice_sets(source, data).items()}
        return MultipleChoiceEvaluator(tokenizer, sets, data.max_length, settings.batch_size,
                                       style=settings.choice_style)
    raise AssertionError(f"no evaluator for benchmark {benchmark.name}")


def choice_sets(source, data: DataConfig) -> dict[str, list[dict]]:
    """The multiple-choice sets: the stand-in's held-out ``forget`` and ``general`` questions, or WMDP's config
    ``data.forget_split`` as ``forget`` (with ``data.retain_split``, a config of the same source, as ``general``).
    """
    if data.source == "hazard_builtin":
        from unlearn.data.hazard_synthetic import evaluation_sets, load_hazard_benchmark

        return evaluation_sets(load_hazard_benchmark(source))
    from unlearn.data.wmdp import load_multiple_choice

    sets = {"forget": load_multiple_choice(source, data.forget_split)}
    if data.retain_split:
        sets["general"] = load_multiple_choice(source, data.retain_split)
    return sets


def result_type(benchmark: str):
    """The result class of a benchmark, for reading a stored result back."""
    if benchmark == "tofu":
        from unlearn.evaluation.results import EvalResult

        return EvalResult
    if benchmark == "muse":
        from unlearn.evaluation.muse_results import MuseResult

        return MuseResult
    if benchmark == "multiple_choice":
        from unlearn.evaluation.multiple_choice import MultipleChoiceResult

        return MultipleChoiceResult
    raise ValueError(f"unknown benchmark {benchmark!r} in a stored result")
