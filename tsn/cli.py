"""The `tsn` command: one sub-command per job, each implemented in its own module.

Each entry of COMMANDS names a module that defines `add_arguments(parser)` and
`run(args) -> int`. Only the module of the sub-command being run (or asked for --help) is
imported: `tsn --help` imports none, `tsn lists --help` only tsn.data.lists_cli, and a command
module keeps its heavy imports (torch, OpenCV) for its `run`. So help is instant and one broken
area cannot break the others (tests/test_architecture.py checks that no help imports torch or cv2).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from tsn.errors import Terminated, interrupt_exit_code

# sub-command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "fuse": ("tsn.fusion", "weighted fusion of score files (raw logits; default RGB:flow 1:1.5)"),
    "test": ("tsn.evaluate_cli", "test a trained run: 25x10 protocol, score file, mean class "
             "accuracy"),
    "train": ("tsn.train_cli", "train (or --resume) a TSN experiment from a config file"),
    "weights": ("tsn.weights.cli", "released weights: list, fetch, import, eval-reference"),
    "synth": ("tsn.data.synth_cli", "seeded synthetic dataset in UCF101's on-disk format"),
    "extract": ("tsn.flow.cli", "frames + TV-L1/DIS/warped flow as dense_flow made them"),
    "lists": ("tsn.data.lists_cli", "TSN file lists from official split files + frames"),
    "results": ("tsn.results_cli", "the runs table (results/runs.csv): list, filter, plot, "
                "rebuild; McNemar of two score files; a score file's confusion"),
    "predict": ("tsn.predict_cli", "top-k classes of your own videos (decoded in memory, "
                "25x10, RGB + flow fused)"),
}


def chosen_command(argv: list[str]) -> str | None:
    """The sub-command named on the command line: the first argument that is not an option."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only the sub-command named in `argv` gets its arguments (and its
    module imported). Without `argv` every sub-command's module is imported (tests, docs)."""
    parser = argparse.ArgumentParser(prog="tsn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    wanted = chosen_command(argv) if argv is not None else None
    for name, (module_name, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if argv is not None and name != wanted:
            continue  # listed in `tsn --help`, not imported
        module = importlib.import_module(module_name)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run,
                         _trailing=getattr(module, "TRAILING_POSITIONALS", None))
    return parser


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `tsn` console script.

    A sub-command whose module sets `TRAILING_POSITIONALS = "<dest>"` (a nargs="*" positional)
    also takes those values after its options: `tsn train CONFIG --resume data.split=2` works
    like `tsn train CONFIG data.split=2 --resume` (plain argparse stops the list at the first
    option and rejects the rest).

    Ctrl-C (SIGINT) or SIGTERM stops any command with one line, `tsn CMD: interrupted; rerun
    the same command to resume`, and exit code 130 / 143, never a traceback (every command
    resumes: finished videos, downloads' `.part` files, the partial score file). `tsn train`
    handles both signals itself: it writes a checkpoint first (tsn/train.py).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args, extra = parser.parse_known_args(argv)
    dest = getattr(args, "_trailing", None)
    stray = [a for a in extra if a.startswith("-")] if dest else extra
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        setattr(args, dest, list(getattr(args, dest)) + extra)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt as err:
        print(f"tsn {args.command}: interrupted; rerun the same command to resume",
              file=sys.stderr)
        return interrupt_exit_code(err)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
