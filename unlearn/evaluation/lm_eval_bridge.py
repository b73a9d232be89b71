"""Scoring an in-memory model with EleutherAI's lm-evaluation-harness itself, where it is installed.

The project's own scorer (:mod:`unlearn.evaluation.multiple_choice`) reproduces the harness's WMDP and
MMLU prompts and scoring without the dependency; this bridge hands the same model to the harness
(``lm_eval.simple_evaluate`` with ``lm_eval.models.huggingface.HFLM(pretrained=model, tokenizer=...)``,
``lm_eval/evaluator.py`` and ``lm_eval/models/huggingface.py``), for runs that want the harness's own
numbers on its own task names (``wmdp_bio``, ``wmdp_cyber``, ``mmlu``...). It needs the optional extra
``pip install lm-eval`` (or ``pip install "unlearn[lm-eval]"``).
"""

from __future__ import annotations

from unlearn.errors import ConfigError

INSTALL_HINT = ("lm-evaluation-harness is not installed: `pip install lm-eval` (or `pip install \"unlearn[lm-eval]\"`) "
                "to score with it, or use the project's own scorer "
                "(unlearn.evaluation.multiple_choice.MultipleChoiceEvaluator), which follows the harness's WMDP and "
                "MMLU prompts and needs nothing more.")


def _import_lm_eval():
    """``(simple_evaluate, HFLM)``, or a ConfigError saying how to get them."""
    try:
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM
    except ImportError as err:
        raise ConfigError(INSTALL_HINT) from err
    return simple_evaluate, HFLM


def task_accuracy(results: dict, tasks: list[str]) -> dict[str, float]:
    """``acc`` of each task from ``simple_evaluate``'s ``results["results"]`` (keys ``"acc,none"``).

    Raises:
        ConfigError: a task has no accuracy (a generative task, or a name the harness reported differently).
    """
    table = results.get("results", {})
    out = {}
    for task in tasks:
        metrics = table.get(task, {})
        value = metrics.get("acc,none", metrics.get("acc"))
        if value is None:
            raise ConfigError(f"lm-eval reported no accuracy for task '{task}' (it reported {sorted(table)} with "
                              f"{sorted(metrics)}); give multiple-choice tasks such as wmdp_bio or mmlu.")
        out[task] = float(value)
    return out


def run_lm_eval(model, tokenizer, tasks: list[str], batch_size: int = 32, **kwargs) -> dict[str, float]:
    """Accuracy of ``model`` on lm-eval ``tasks``, scored by the harness itself.

    Args:
        model: A loaded Hugging Face causal LM (it stays where it is; the harness uses its device).
        tokenizer: Its tokenizer.
        tasks: Harness task names, e.g. ``["wmdp_bio", "wmdp_cyber", "mmlu"]`` (a group's own row is its
            aggregate, as the harness reports it).
        batch_size: Requests per forward pass.
        **kwargs: Further ``simple_evaluate`` arguments (``limit=``, ``num_fewshot=``...).

    Returns:
        ``{task: accuracy}``; ``{}`` on ranks other than 0 (the harness returns its results on rank 0 only).

    Raises:
        ConfigError: ``lm_eval`` is not installed (with the command to install it), or a task has no accuracy.
    """
    if not tasks:
        raise ConfigError("run_lm_eval needs at least one task name, e.g. wmdp_bio.")
    simple_evaluate, HFLM = _import_lm_eval()
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    results = simple_evaluate(model=lm, tasks=list(tasks), batch_size=batch_size, **kwargs)
    return {} if results is None else task_accuracy(results, tasks)


def score_model_dir(model_dir, tasks: list[str], batch_size: int, load_model, device) -> dict[str, float]:
    """``eval.lm_eval_tasks`` after ``fit``: :func:`run_lm_eval` on the saved model folder ``model_dir``.

    Args:
        load_model: ``load(path)`` with the run's dtype (``unlearn.evaluation.job.model_loader``).
        device: Where the model runs (``unlearn.evaluation.job.evaluation_device``).

    Raises:
        ConfigError: as :func:`run_lm_eval` (checked before the model loads).
    """
    from unlearn.models.loading import load_tokenizer

    _import_lm_eval()
    model = load_model(str(model_dir)).to(device)
    try:
        return run_lm_eval(model, load_tokenizer(str(model_dir)), list(tasks), batch_size)
    finally:
        del model
