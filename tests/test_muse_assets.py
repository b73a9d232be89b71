"""``resolve_assets`` on MUSE: the built-in stand-in's target and retain models, and real MUSE's named models."""

import pytest

from tests.helpers import TINY_CONFIG
from unlearn.config.loading import load_config
from unlearn.errors import ConfigError
from unlearn.training.assets import muse_examples, muse_model_dir, resolve_assets

TINY_MUSE = ["data=muse_builtin", "data.muse_builtin.forget_articles=3", "data.muse_builtin.retain1_articles=2",
             "data.muse_builtin.retain2_articles=3", "data.muse_builtin.holdout_articles=3",
             "data.muse_builtin.questions_per_article=1", "data.muse_builtin.icl_examples=1",
             "finetune.epochs=1", "finetune.warmup_epochs=0", "trainer.enable_progress_bar=false",
             "trainer.accelerator=cpu"]


def test_the_builtin_muse_target_and_retain_models_are_trained_once_and_cached(tmp_path, one_thread):
    import torch
    from transformers import AutoModelForCausalLM

    cfg = load_config([TINY_CONFIG], [*TINY_MUSE, f"run.cache_dir={tmp_path}"])
    assets = resolve_assets(cfg)
    assert assets.source.parent == tmp_path / "benchmarks" and assets.source.name.startswith("muse-builtin-")
    out = muse_model_dir(cfg)
    assert out.parent == tmp_path / "models" and out.name.startswith("muse-builtin-")
    assert (assets.target, assets.retain) == (str(out / "target"), str(out / "retain"))
    weights = {role: out / role / "model.safetensors" for role in ("target", "retain")}
    stamps = {role: path.stat().st_mtime_ns for role, path in weights.items()}
    assert resolve_assets(cfg) == assets  # reused, not retrained
    assert {role: path.stat().st_mtime_ns for role, path in weights.items()} == stamps
    target, retain = (AutoModelForCausalLM.from_pretrained(p) for p in (assets.target, assets.retain))
    assert target.config.hidden_size == 32 and target.config.num_hidden_layers == 2  # model.builtin.* of tiny.yaml
    assert not torch.equal(target.model.embed_tokens.weight, retain.model.embed_tokens.weight)  # different data
    # The built-in TOFU-format models live elsewhere: neither cache is mistaken for the other.
    assert not list((tmp_path / "models").glob("builtin-*"))


def test_what_each_builtin_muse_model_learns(tmp_path):
    from tests.helpers import tiny_tokenizer
    from unlearn.data.muse import load_muse_corpus, load_muse_split

    cfg = load_config([TINY_CONFIG], [*TINY_MUSE, f"run.cache_dir={tmp_path}", "model.path=unused"])
    source = resolve_assets(cfg).source
    tok = tiny_tokenizer()
    target, retain = (muse_examples(source, role, tok, 1024) for role in ("target", "retain"))
    n_articles = {split: len(load_muse_corpus(source, split)) for split in ("forget", "retain1", "retain2")}
    n_questions = {split: len(load_muse_split(source, "knowmem", split)) for split in ("forget_qa", "retain_qa")}
    # One chunk per article at this length, then one example per KnowMem question.
    assert len(target) == sum(n_articles.values()) + sum(n_questions.values()) == 8 + 6
    assert len(retain) == n_articles["retain1"] + n_articles["retain2"] + n_questions["retain_qa"] == 5 + 3
    articles = [e for e in target[:8] if -100 not in e.labels]
    assert len(articles) == 8 and all(e.labels == e.input_ids for e in articles)  # language modelling
    questions = target[8:]
    assert all(e.labels[0] == -100 and e.labels[-1] == tok.eos_token_id for e in questions)  # answer-only labels


def test_model_path_is_used_as_given_and_real_muse_needs_one(tmp_path):
    cfg = load_config([TINY_CONFIG], [*TINY_MUSE, f"run.cache_dir={tmp_path}", "model.path=my/target",
                                      "model.retain_path=my/retain"])
    assets = resolve_assets(cfg)
    assert (assets.target, assets.retain) == ("my/target", "my/retain") and not (tmp_path / "models").exists()
    cfg = load_config([], ["data=muse", "model.path=muse-bench/MUSE-news_target", f"run.cache_dir={tmp_path}"])
    assert resolve_assets(cfg).source == "muse-bench/MUSE-News" and resolve_assets(cfg).retain is None
    with pytest.raises(ConfigError, match="data.source=muse needs model.path.*muse-bench/MUSE-news_target"):
        resolve_assets(load_config([], ["data=muse", f"run.cache_dir={tmp_path}"]))
    from unlearn.training.finetune import finetune

    with pytest.raises(ConfigError, match="MUSE publishes its models"):  # `unlearn finetune` is TOFU's method
        finetune(cfg, tmp_path, builtin=False)


@pytest.mark.slow
def test_the_default_builtin_muse_target_knows_the_forget_articles_and_the_retain_model_does_not(tmp_path, one_thread):
    """The default stand-in and tiny Llama (minutes on two CPU cores): what MUSE's metrics need to tell apart."""
    import torch
    from transformers import AutoModelForCausalLM

    from unlearn.data.muse import load_muse_eval
    from unlearn.models.loading import load_tokenizer

    cfg = load_config([], ["data=muse_builtin", f"run.cache_dir={tmp_path}", "trainer.enable_progress_bar=false"])
    assets = resolve_assets(cfg)
    tok, sets = load_tokenizer(assets.target), load_muse_eval(assets.source)

    def nll(path, key):
        model = AutoModelForCausalLM.from_pretrained(path).eval()
        with torch.no_grad():
            losses = [model(input_ids=ids, labels=ids).loss.item()
                      for ids in (torch.tensor([tok(r["text"])["input_ids"]]) for r in sets[key])]
        return sum(losses) / len(losses)

    target = {key: nll(assets.target, key) for key in ("privleak_forget", "privleak_retain", "privleak_holdout")}
    retain = {key: nll(assets.retain, key) for key in ("privleak_forget", "privleak_retain", "privleak_holdout")}
    assert target["privleak_forget"] < 0.5 * target["privleak_holdout"]  # members: memorised
    assert target["privleak_forget"] < 0.5 * retain["privleak_forget"]  # the retain model never saw them
    assert retain["privleak_retain"] < 0.5 * retain["privleak_holdout"]
