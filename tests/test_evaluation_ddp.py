"""Under DDP (2 CPU processes, gloo) every rank evaluates its shard and gets the single-process result."""

import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from tests.helpers import init_gloo, tiny_tokenizer
from tests.test_evaluation import scrambled_model, tiny_splits
from unlearn.evaluation import EvalResult, TofuEvaluator

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
SETTINGS = {"max_length": 64, "max_new_tokens": 6, "batch_size": 3}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _evaluate_on_rank(rank: int, world_size: int, port: int, model_dir: str, splits: dict, out_dir: str) -> None:
    from unlearn.models.loading import load_model, load_tokenizer

    init_gloo(rank, world_size, port)
    try:
        evaluator = TofuEvaluator(load_tokenizer(model_dir), splits, **SETTINGS)
        result = evaluator(load_model(model_dir))
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(result.to_dict(), f)
    finally:
        torch.distributed.destroy_process_group()


def test_two_process_evaluation_equals_one_process(tmp_path):
    tokenizer = tiny_tokenizer()
    scrambled_model(tokenizer, seed=2).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    splits = tiny_splits()
    splits["forget"] = splits["forget"] + splits["forget"][:2]  # 7 questions: an uneven split across 2 ranks

    from unlearn.models.loading import load_model, load_tokenizer

    single = TofuEvaluator(load_tokenizer(str(tmp_path / "model")), splits, **SETTINGS)(
        load_model(str(tmp_path / "model")))
    mp.spawn(_evaluate_on_rank, args=(2, _free_port(), str(tmp_path / "model"), splits, str(tmp_path)), nprocs=2)

    for rank in (0, 1):
        gathered = EvalResult.from_dict(json.loads((tmp_path / f"rank{rank}.json").read_text()))
        for name, expected in single.splits.items():
            got = gathered.splits[name]
            assert got.index.tolist() == expected.index.tolist() == list(range(len(splits[name])))
            assert got.generation == expected.generation and got.question == expected.question
            for field in ("answer_nll", "base_nll", "perturbed_nll", "rouge_l"):
                np.testing.assert_allclose(getattr(got, field), getattr(expected, field), rtol=1e-5, equal_nan=True)
        np.testing.assert_allclose(list(gathered.summary().values())[1:], list(single.summary().values())[1:],
                                   rtol=1e-5)
