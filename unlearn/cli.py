"""Command line: ``python -m unlearn COMMAND [--config FILE]... [key=value]...``.

A thin table of commands over the job functions (``fit``, ``finetune``, ...); configuration
merges typed defaults, then each ``--config`` YAML in order, then ``key=value`` overrides.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import asdict

from unlearn.config.schema import Config, ConfigError, to_yaml
from unlearn.config.loading import load_config

log = logging.getLogger("unlearn")


def run_fit(cfg: Config, args) -> None:
    from unlearn.training.fit import fit

    fit(cfg)


def run_finetune(cfg: Config, args) -> None:
    from unlearn.training.fit import resolve_assets
    from unlearn.training.finetune import finetune

    if cfg.model.path is None:
        assets = resolve_assets(cfg)  # builds and caches the built-in target and retain models
        print(f"Target model: {assets.target}\nRetain model: {assets.retain}")
        return
    source = resolve_assets(cfg).source
    paths = finetune(cfg, source, out_dir=args.out, builtin=False)
    print(f"Target model: {paths['target']}\nRetain model: {paths['retain']}")


def run_eval(cfg: Config, args) -> None:
    from unlearn.evaluation.job import evaluate

    evaluate(cfg, out=args.out)


def run_data(cfg: Config, args) -> None:
    from unlearn.data.synthetic import BenchmarkSpec, generate_benchmark, write_benchmark

    spec = BenchmarkSpec(**{**asdict(cfg.data.builtin), "forget_percents": tuple(cfg.data.builtin.forget_percents)})
    out = write_benchmark(args.out, generate_benchmark(spec))
    print(f"Wrote the built-in benchmark to {out}")


COMMANDS = {
    "fit": (run_fit, "unlearn the forget set from a model (default: the built-in benchmark)"),
    "finetune": (run_finetune, "train the target model on `full` and the retain model on the retain split"),
    "eval": (run_eval, "TOFU metrics of a model (model.path=, default the built-in target) against a retain model"),
    "data": (run_data, "write the built-in fictitious-authors benchmark in TOFU's layout"),
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m unlearn", description="Make a causal LM forget a chosen set of data.")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("bench", help="measure step time and peak memory of GA and NPO (see `bench --help`)", add_help=False)
    sub.add_parser("compare", help="table and figure of finished runs: compare RUN_DIR... [--out DIR]", add_help=False)
    sub.add_parser("grid", help="run losses x forget splits as fit runs and collect a table (see `grid --help`)",
                   add_help=False)
    for name, (_, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.add_argument("--config", action="append", default=[], metavar="FILE",
                         help="YAML config (a path, or a name under configs/ such as experiment/npo_rt_forget10); may repeat")
        cmd.add_argument("--show-config", action="store_true", help="print the resolved config and exit")
        cmd.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. loss.beta=0.2")
        if name == "data":
            cmd.add_argument("--out", required=True, help="folder to write the benchmark files into")
        if name == "eval":
            cmd.add_argument("--out", default=None, help="folder for eval.json and eval.md "
                             "(default: <run.output_dir>/eval_<run.name or model name>)")
        if name == "finetune":
            cmd.add_argument("--out", default=None, help="folder for the target and retain models (non-built-in models)")
        if name == "fit":
            cmd.add_argument("--resume", action="store_true", help="continue the run named run.name from its last "
                             "checkpoint, with the same config (the same as run.resume=true)")
    return top


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # the benchmark takes its own flags, not a run config
        from unlearn.experiments.bench import main as bench

        return bench(argv[1:])
    if argv[:1] == ["grid"]:  # a set of fit runs, each with its own config
        from unlearn.experiments.grid import main as grid

        return grid(argv[1:])
    if argv[:1] == ["compare"]:  # run folders, not a run config
        from unlearn.reporting.compare import main as compare

        return compare(argv[1:])
    args = parser().parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        resume = ["run.resume=true"] if getattr(args, "resume", False) else []
        cfg = load_config(args.config, [*args.overrides, *resume])
        if args.show_config:
            print(to_yaml(cfg))
            return 0
        COMMANDS[args.command][0](cfg, args)
    except (ConfigError, FileExistsError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        # Errors the project raises on purpose carry a message meant for the user.
        from unlearn.data.sources import DataError
        from unlearn.training.guards import NonFiniteError
        from unlearn.models.loading import ModelLoadError

        from unlearn.training.distributed import CollectiveError
        from unlearn.training.resume import RunInterrupted

        if isinstance(err, RunInterrupted):  # a scheduler's pre-emption: exit non-zero so it is not taken as done
            print(f"error: {err}", file=sys.stderr)
            return 143
        if isinstance(err, (DataError, ModelLoadError, NonFiniteError, CollectiveError)):
            print(f"error: {err}", file=sys.stderr)
            return 1
        raise
    return 0
