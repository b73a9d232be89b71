"""Where a run's benchmark and models come from, and, for the built-in benchmarks, making them.

The built-in benchmarks (``data.source=builtin``, TOFU's format; ``data.source=muse_builtin``,
MUSE's; ``data.source=hazard_builtin``, the WMDP stand-in) are generated and cached under
``run.cache_dir``, and their target and retain models are trained there on first use
(:func:`unlearn.training.finetune.finetune`, :func:`finetune_muse_builtin`,
:func:`finetune_hazard_builtin`); every other source names its files and models itself.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from unlearn.config.schema import Config
from unlearn.data.sources import builtin_benchmark_dir, is_local
from unlearn.errors import ConfigError
from unlearn.names import TOFU_HUB_ID

log = logging.getLogger(__name__)
SOURCES = ("builtin", "tofu", "files", "muse", "muse_builtin", "wmdp", "hazard_builtin")
BUILTIN_SOURCES = ("builtin", "muse_builtin", "hazard_builtin")  # the built-in tiny Llama knows only these


@dataclass
class Assets:
    """Where a run's benchmark and models come from."""

    source: Path | str  # folder or hub id of the benchmark files
    target: str  # the model to unlearn
    retain: str | None  # the model trained without the forget set, when known


def builtin_spec(cfg: Config):
    """The built-in benchmark that ``data.builtin.*`` describes (a :class:`~unlearn.data.synthetic.BenchmarkSpec`)."""
    from unlearn.data.synthetic import BenchmarkSpec

    return BenchmarkSpec(**{**asdict(cfg.data.builtin), "forget_percents": tuple(cfg.data.builtin.forget_percents)})


def muse_spec(cfg: Config):
    """The MUSE-format benchmark ``data.muse_builtin.*`` describes (a :class:`~unlearn.data.muse_synthetic.MuseSpec`).
    """
    from unlearn.data.muse_synthetic import MuseSpec

    return MuseSpec(**asdict(cfg.data.muse_builtin))


def hazard_spec(cfg: Config):
    """The WMDP stand-in ``data.hazard_builtin.*`` describes (a :class:`~unlearn.data.hazard_synthetic.HazardSpec`)."""
    from unlearn.data.hazard_synthetic import HazardSpec

    return HazardSpec(**asdict(cfg.data.hazard_builtin))


def resolve_assets(cfg: Config) -> Assets:
    """Locate (and on a built-in benchmark, create and cache) the benchmark and models.

    Returns:
        :class:`Assets`: ``source`` is the folder of the benchmark's files (built-in benchmarks, local
        folders), a hub id (``locuslab/TOFU``, ``muse-bench/MUSE-News``) or, for ``files``, the forget
        set's path; ``target`` and ``retain`` are ``model.path`` and ``model.retain_path`` when
        ``model.path`` is given, else the built-in models' folders.

    Raises:
        ConfigError: an unknown source, or no ``model.path`` for a source the built-in model does not know.
    """
    if cfg.data.source == "builtin":
        source = builtin_benchmark_dir(cfg.run.cache_dir, builtin_spec(cfg))
    elif cfg.data.source == "tofu":
        source = cfg.data.path or TOFU_HUB_ID
    elif cfg.data.source == "files":
        source = cfg.data.forget_path  # the retain set is read beside it (unlearn.data.custom)
    elif cfg.data.source == "muse_builtin":
        from unlearn.data.muse_synthetic import builtin_muse_dir

        source = builtin_muse_dir(cfg.run.cache_dir, muse_spec(cfg))
    elif cfg.data.source == "hazard_builtin":
        from unlearn.data.hazard_synthetic import builtin_hazard_dir

        source = builtin_hazard_dir(cfg.run.cache_dir, hazard_spec(cfg))
    elif cfg.data.source in ("muse", "wmdp"):
        source = cfg.data.path  # a hub id or a folder (validation requires it)
    else:
        raise ConfigError(f"data.source must be one of {', '.join(SOURCES)}, got '{cfg.data.source}'.")
    if cfg.model.path is not None:
        return Assets(source, cfg.model.path, cfg.model.retain_path)
    if cfg.model.from_scratch:
        return _from_scratch(cfg, source)
    if cfg.data.source == "muse":
        raise ConfigError("data.source=muse needs model.path, the model trained on MUSE's corpus, e.g. "
                          "model.path=muse-bench/MUSE-news_target model.retain_path=muse-bench/MUSE-news_retrain "
                          "(Books: MUSE-books_target, MUSE-books_retrain). Offline, use data=muse_builtin.")
    if cfg.data.source == "wmdp":
        raise ConfigError("data.source=wmdp needs model.path, the model to evaluate or unlearn (a hub id such as "
                          "HuggingFaceH4/zephyr-7b-beta, or a local folder). Offline, use data=hazard_builtin, whose "
                          "built-in models are trained on first use.")
    if cfg.data.source not in BUILTIN_SOURCES:
        raise ConfigError("model.path is required unless data.source=builtin (the built-in model only knows "
                          "the built-in benchmark). Give a hub id or a local folder, e.g. model.path=locuslab/tofu_ft_llama2-7b, "
                          "or, for TOFU-format files in a local folder, model.from_scratch=true to train the built-in "
                          "architecture on them (configs/experiment/tofu_scratch.yaml).")
    if cfg.data.source == "muse_builtin":
        models = finetune_muse_builtin(cfg, source)
    elif cfg.data.source == "hazard_builtin":
        models = finetune_hazard_builtin(cfg, source)
    else:
        from unlearn.training.finetune import finetune

        models = finetune(cfg, source, builtin=True)
    return Assets(source, str(models["target"]), cfg.model.retain_path or str(models["retain"]))


def trained_models_dir(cfg: Config) -> Path | None:
    """The cache folder of the target and retain models that :func:`resolve_assets` trains on first use for
    ``cfg`` (the built-in benchmarks' and ``model.from_scratch``'s), or None when it trains none (``model.path``)."""
    if cfg.model.path is not None:
        return None
    from unlearn.training.model_cache import builtin_model_dir, scratch_model_dir

    if cfg.data.source == "builtin":
        return builtin_model_dir(cfg)
    if cfg.model.from_scratch and cfg.data.source == "tofu":
        return scratch_model_dir(cfg, cfg.data.path)
    if cfg.data.source == "muse_builtin":
        return muse_model_dir(cfg)
    if cfg.data.source == "hazard_builtin":
        return hazard_model_dir(cfg)
    return None


def _from_scratch(cfg: Config, source) -> Assets:
    """``model.from_scratch``: target and retain models of the built-in architecture trained on TOFU-format files."""
    from unlearn.training.finetune import finetune

    if not is_local(source) or not Path(source).is_dir():
        raise ConfigError(f"model.from_scratch=true trains its tokenizer and models on the files of a local folder; "
                          f"data.path={source} is not one. Download TOFU's files (full.json, forget10.json, "
                          "retain90.json, real_authors_perturbed.json, world_facts_perturbed.json, ...) and set "
                          "data.path to their folder.")
    models = finetune(cfg, Path(source), builtin=True)
    return Assets(source, str(models["target"]), cfg.model.retain_path or str(models["retain"]))


def muse_model_dir(cfg: Config) -> Path:
    """Cache folder of the MUSE-format built-in models, keyed by everything that changes their weights
    (the generator's version too: a new benchmark is never paired with models of the old one)."""
    from unlearn.data.muse_synthetic import GENERATOR_VERSION
    from unlearn.training.model_cache import model_cache_dir

    return model_cache_dir(cfg, "muse-builtin", {"data": asdict(cfg.data.muse_builtin), "version": GENERATOR_VERSION})


def muse_examples(source: Path, role: str, tokenizer, max_length: int) -> list:
    """What the built-in ``target`` or ``retain`` model learns, tokenised.

    Articles are plain language modelling in ``max_length`` chunks, as a MUSE run's forget and retain
    sets are (:func:`~unlearn.data.custom.tokenize_text`). The KnowMem questions are in MUSE's KnowMem
    prompt, with their set's in-context examples, the answer the only label
    (:func:`~unlearn.data.muse.tokenize_knowmem`): MUSE's target learned only the articles, but a tiny
    model with no pretraining cannot answer questions about text it has only read.
    """
    from unlearn.data.custom import tokenize_text
    from unlearn.data.muse import tokenize_knowmem
    from unlearn.data.muse_synthetic import finetune_sets

    texts, qa_sets = finetune_sets(source, role)
    examples = [example for row in texts for example in tokenize_text(tokenizer, row["text"], max_length)]
    for questions, icl in qa_sets:
        examples += [tokenize_knowmem(tokenizer, r["question"], r["answer"], icl, max_length) for r in questions]
    return examples


def finetune_muse_builtin(cfg: Config, source: Path) -> dict[str, Path]:
    """Train (or reuse) the built-in target and retain models of the MUSE-format benchmark in ``source``.

    Both start from the same fresh tiny Llama (``model.builtin.*``, ``run.seed``) and a tokenizer
    trained on the benchmark's text (:func:`~unlearn.data.muse_synthetic.tokenizer_texts`), with the
    ``finetune.*`` settings. The target learns the forget, retain1 and retain2 articles and the
    forget and retain KnowMem questions; the retain model the retain articles and questions only;
    neither sees a holdout article (:func:`~unlearn.data.muse_synthetic.finetune_sets`).

    Returns:
        ``{"target": path, "retain": path}`` under :func:`muse_model_dir`; existing models are reused.
    """
    from unlearn.data.muse_synthetic import tokenizer_texts

    return train_builtin_pair(cfg, muse_model_dir(cfg), lambda: tokenizer_texts(source),
                              lambda role, tok: muse_examples(source, role, tok, cfg.data.max_length), "MUSE-format")


def hazard_model_dir(cfg: Config) -> Path:
    """Cache folder of the WMDP stand-in's built-in models, keyed by everything that changes their weights:
    the spec, the question style they learn (``eval.choice_style``), the model, the fine-tuning settings."""
    from unlearn.training.model_cache import model_cache_dir

    return model_cache_dir(cfg, "hazard-builtin", {"data": asdict(cfg.data.hazard_builtin),
                                                   "style": cfg.eval.choice_style})


def finetune_hazard_builtin(cfg: Config, source: Path) -> dict[str, Path]:
    """Train (or reuse) the WMDP stand-in's built-in target and retain models (the benchmark in ``source``).

    Both start from the same fresh tiny Llama (``model.builtin.*``, ``run.seed``) and a tokenizer trained on
    every text of the benchmark (:func:`~unlearn.data.hazard_synthetic.tokenizer_texts`), with the ``finetune.*``
    settings. The target learns both corpora and the training questions in ``eval.choice_style``'s prompt
    (:func:`~unlearn.data.hazard_synthetic.target_model_rows`), the retain model the general half only
    (:func:`~unlearn.data.hazard_synthetic.retain_model_rows`); no evaluated question is trained on.

    Returns:
        ``{"target": path, "retain": path}`` under :func:`hazard_model_dir`; existing models are reused.
    """
    from unlearn.data import hazard_synthetic as hazard
    from unlearn.data.wmdp import tokenize_training_rows

    bench = hazard.load_hazard_benchmark(source)
    rows = {"target": hazard.target_model_rows, "retain": hazard.retain_model_rows}
    return train_builtin_pair(
        cfg, hazard_model_dir(cfg), lambda: hazard.tokenizer_texts(bench),
        lambda role, tok: tokenize_training_rows(tok, rows[role](bench, cfg.eval.choice_style), cfg.data.max_length),
        "hazard stand-in")


def train_builtin_pair(cfg: Config, out_dir: Path, texts, examples_for, desc: str) -> dict[str, Path]:
    """Train (or reuse) a stand-in's ``target`` and ``retain`` models in ``out_dir``.

    Both start from the same fresh tiny Llama (``model.builtin.*``, ``run.seed``) and the tokenizer cached in
    ``out_dir/tokenizer`` (trained on ``texts()`` the first time), then learn ``examples_for(role, tokenizer)``
    with the ``finetune.*`` settings. A model folder that exists is complete (written atomically) and reused.
    """
    import lightning as L
    import torch

    from unlearn.models.saving import save_pretrained_atomic
    from unlearn.training.finetune import builtin_tokenizer, fresh_tiny_llama
    from unlearn.training.sft import train_on_examples

    paths = {role: out_dir / role for role in ("target", "retain")}
    if all(path.is_dir() for path in paths.values()):
        return paths
    start = time.time()
    tokenizer = builtin_tokenizer(out_dir / "tokenizer", texts, cfg.model.builtin.vocab_size)
    for role, path in paths.items():
        if path.is_dir():
            continue
        L.seed_everything(cfg.run.seed, verbose=False)
        model = train_on_examples(fresh_tiny_llama(cfg, tokenizer), tokenizer, examples_for(role, tokenizer),
                                  cfg.finetune, cfg.trainer.accelerator, cfg.trainer.precision,
                                  cfg.trainer.enable_progress_bar, desc=f"{desc} {role}")
        save_pretrained_atomic(model, tokenizer, path)
        del model
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    log.info("%s target and retain models ready in %s (%.0f s)", desc, out_dir, time.time() - start)
    return paths
