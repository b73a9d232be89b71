"""Command line: ``python -m unlearn COMMAND ...``.

One table, :data:`COMMANDS`, lists every command. Most take a run configuration
(``[--config FILE]... [key=value]...``: typed defaults, then each YAML in order, then the
overrides) and call one job function; the others (``bench``, ``compare``, ``sweep``, ``reproduce``) parse
their own flags. Every error meant for the user derives from :class:`unlearn.errors.UnlearnError`
and ends as one ``error:`` line with its exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from dataclasses import dataclass
from collections.abc import Callable

from unlearn.config.loading import load_config
from unlearn.config.schema import Config, to_yaml
from unlearn.errors import UnlearnError

log = logging.getLogger("unlearn")


def run_fit(cfg: Config, args) -> None:
    from unlearn.training.fit import fit

    fit(cfg)


def run_finetune(cfg: Config, args) -> None:
    from unlearn.training.assets import resolve_assets
    from unlearn.training.finetune import check_finetune_inputs, check_starting_model, finetune

    check_finetune_inputs(cfg, args.out)  # where it writes, and the forget split, before any model loads
    if cfg.model.path is not None:
        check_starting_model(cfg)  # a model.path that does not exist fails before anything runs
    elif args.out is not None:
        log.warning("--out is for fine-tuning model.path=...; the built-in models stay in their cache under "
                    "run.cache_dir=%s, where fit looks them up.", cfg.run.cache_dir)
    assets = resolve_assets(cfg)  # on the built-in benchmark without model.path this builds and caches both models
    if cfg.model.path is not None:  # never into the built-in models' folder (unlearn.training.finetune)
        paths = finetune(cfg, assets.source, out_dir=args.out, builtin=False)
        assets.target, assets.retain = paths["target"], paths["retain"]
    print(f"Target model: {assets.target}\nRetain model: {assets.retain}")


def run_eval(cfg: Config, args) -> None:
    from unlearn.evaluation.job import evaluate

    evaluate(cfg, out=args.out)


def run_attack(cfg: Config, args) -> None:
    from unlearn.attacks.job import attack

    attack(cfg, out=args.out)


def run_data(cfg: Config, args) -> None:
    from unlearn.data.benchmark_files import write_benchmark
    from unlearn.data.synthetic import generate_benchmark
    from unlearn.training.assets import builtin_spec

    out = write_benchmark(args.out, generate_benchmark(builtin_spec(cfg)))
    print(f"Wrote the built-in benchmark to {out}")


# Commands that parse their own flags, imported only when they run.
def run_compare(argv: list[str]) -> int:
    from unlearn.reporting.compare import main as compare

    return compare(argv)


def run_sweep(argv: list[str]) -> int:
    from unlearn.experiments.sweep import main as sweep

    return sweep(argv)


def run_reproduce(argv: list[str]) -> int:
    from unlearn.experiments.reproduce import main as reproduce

    return reproduce(argv)


def run_bench(argv: list[str]) -> int:
    from unlearn.experiments.bench import main as bench

    return bench(argv)


@dataclass(frozen=True)
class Command:
    help: str
    run_config: Callable | None = None  # job(cfg, args) for commands that take a run configuration
    own_flags: Callable[[list[str]], int] | None = None  # main(argv) for the others
    out: str | None = None  # help of the command's --out flag, when it has one
    out_required: bool = False


COMMANDS: dict[str, Command] = {
    "fit": Command("unlearn the forget set from a model (default: the built-in benchmark)", run_fit),
    "finetune": Command("train the target model on `full` and the retain model on the retain split", run_finetune,
                        out="folder for the target and retain models (non-built-in models)"),
    "eval": Command("TOFU metrics of a model (model.path=, default the built-in target) against a retain model",
                    run_eval, out="folder for eval.json and eval.md (default: <run.output_dir>/eval_<run.name "
                    "or model name>)"),
    "attack": Command("relearning, quantisation and paraphrase attacks on a model (attack.name=...; "
                      "docs/robustness.md)", run_attack, out="folder for attack.json and attack.md (default: the "
                      "run folder for model.path=<run>/model, else <run.output_dir>/attack_<name>)"),
    "data": Command("write the built-in fictitious-authors benchmark in TOFU's layout", run_data,
                    out="folder to write the benchmark files into", out_required=True),
    "compare": Command("table and figure of finished runs: compare RUN_DIR... [--out DIR]",
                       own_flags=run_compare),
    "sweep": Command("run the fit runs of a sweep file (configs/sweep/) over seeds and collect mean ± sd: "
                     "sweep FILE.yaml (`sweep --help`)", own_flags=run_sweep),
    "reproduce": Command("run a published recipe (configs/reproduce/) and check its numbers against their bands: "
                         "reproduce NAME (`reproduce --help`)", own_flags=run_reproduce),
    "bench": Command("measure step time and peak memory of GA and NPO (see `bench --help`)",
                     own_flags=run_bench),
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m unlearn", description="Make a causal LM forget a chosen set of data.")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        if command.own_flags is not None:
            sub.add_parser(name, help=command.help, add_help=False)
            continue
        cmd = sub.add_parser(name, help=command.help, description=command.help)
        cmd.add_argument("--config", action="append", default=[], metavar="FILE",
                         help="YAML config (a path, or a name under configs/ such as loss/npo); may repeat")
        cmd.add_argument("--show-config", action="store_true", help="print the resolved config and exit")
        cmd.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. loss.beta=0.2")
        if command.out is not None:
            cmd.add_argument("--out", required=command.out_required, default=None, help=command.out)
        if name == "fit":
            cmd.add_argument("--resume", action="store_true", help="continue the run named run.name from its last "
                             "checkpoint, with the same config (the same as run.resume=true)")
    return top


def _setup_logging() -> None:
    if not any(getattr(h, "_unlearn", False) for h in log.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler._unlearn = True
        log.addHandler(handler)
    log.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = COMMANDS.get(argv[0]) if argv else None
    try:
        if command is not None and command.own_flags is not None:
            return command.own_flags(argv[1:])
        args = parser().parse_args(argv)
        _setup_logging()
        resume = ["run.resume=true"] if getattr(args, "resume", False) else []
        cfg = load_config(args.config, [*args.overrides, *resume])
        if args.show_config:
            print(to_yaml(cfg))
            return 0
        COMMANDS[args.command].run_config(cfg, args)
    except UnlearnError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except (FileExistsError, FileNotFoundError) as err:  # from the standard library: paths the user gave
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside training (which saves its state and says how to resume)
        print("error: stopped by Ctrl-C (SIGINT); files already written are whole (atomic writes).", file=sys.stderr)
        return 130
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(f"error: no space left on the device holding {err.filename or 'a file being written'}; files "
              "already written are whole (atomic writes). Free space and run the command again.", file=sys.stderr)
        return 1
    return 0
