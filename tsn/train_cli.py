"""`tsn train CONFIG [key=value ...] [--resume]`: run or resume one training experiment.

CONFIG is a .toml or .json file of config sections (model, data, solver, test) and top-level
keys (name, seed, ...); `key=value` pairs override it, e.g. `solver.preset=paper data.split=2`.
Several processes: `mpirun -np 4 tsn train CONFIG` or `torchrun --nproc_per_node 4 -m tsn.cli
train CONFIG` (see tsn.engine.distributed). Exit codes: 0 done, 2 bad config/input, 3 non-finite
loss (last good checkpoint kept), 4 another rank failed, 130 / 143 stopped by SIGINT / SIGTERM
(after writing the checkpoint of the current iteration; one line says how to resume).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

log = logging.getLogger("tsn.train")
TRAILING_POSITIONALS = "overrides"  # key=value pairs may also follow the options (tsn.cli)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `tsn train`."""
    parser.add_argument("config", help="experiment config file (.toml or .json)")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value",
        help="config overrides, before or after the options, type-checked, "
        "e.g. solver.base_lr=0.0005 solver.preset=paper",
    )
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint of the run folder")
    parser.add_argument("--run-dir", default=None,
                        help="run folder (default: <run_root>/<name> from the config)")


def resume_command(args: argparse.Namespace) -> str:
    """The command line that resumes this run (the same config, overrides and run folder)."""
    words = ["tsn", "train", args.config, *args.overrides, "--resume"]
    return shlex.join(words + (["--run-dir", args.run_dir] if args.run_dir else []))


def run(args: argparse.Namespace) -> int:
    """Load the config, train, and turn the known failures into one-line errors."""
    from tsn.config import ConfigError, load_experiment
    from tsn.engine import checkpoint
    from tsn.engine.checkpoint import CheckpointError
    from tsn.engine.distributed import DistributedError, detect
    from tsn.engine.interrupt import TrainingInterrupted
    from tsn.errors import interrupt_exit_code
    from tsn.train import NonFiniteLossError, ResumeError, train

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    exp = None
    try:
        exp = load_experiment(args.config, args.overrides)
        result = train(exp, resume=args.resume, run_dir=args.run_dir)
    except TrainingInterrupted as stop:
        if stop.is_main:
            print(f"tsn train: {stop}; resume with: {resume_command(args)}", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt as err:  # a second signal, or one before training started
        run_dir = Path(args.run_dir or (Path(exp.run_root) / exp.name if exp else "."))
        found = checkpoint.latest(run_dir / "checkpoints") if exp is not None else None
        if detect().is_main:
            print("tsn train: interrupted; " + (
                f"resume from {found} with: {resume_command(args)}" if found else
                "no checkpoint was written yet: rerun the same command"), file=sys.stderr)
        return interrupt_exit_code(err)
    except (ConfigError, ResumeError, CheckpointError, ValueError) as err:
        print(f"tsn train: error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(f"tsn train: stopped: {err}", file=sys.stderr)
        return 3
    except DistributedError as err:
        print(f"tsn train: error: {err}", file=sys.stderr)
        return 4
    except OSError as err:  # disk full, read-only run folder: the last checkpoint is intact
        print(f"tsn train: error: cannot write the run folder: {err}", file=sys.stderr)
        return 2
    log.info("done: %d iterations, final loss %.6g, checkpoint %s",
             result.iterations, result.final_loss, result.checkpoint)
    return 0
