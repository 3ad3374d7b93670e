"""The `tsn` command: one sub-command per job, each implemented in its own module.

Each entry of COMMANDS names a module that defines `add_arguments(parser)` and
`run(args) -> int`. Modules are imported only when their sub-command runs, so
`tsn --help` stays fast and one broken area cannot break the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# sub-command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "fuse": ("tsn.fusion", "weighted fusion of score files (raw logits; default RGB:flow 1:1.5)"),
    "test": ("tsn.evaluate", "test a trained run: 25x10 protocol, score file, mean class accuracy"),
    "train": ("tsn.train_cli", "train (or --resume) a TSN experiment from a config file"),
    "weights": ("tsn.weights.cli", "released weights: list, fetch, import, eval-reference"),
    "synth": ("tsn.data.synth_cli", "seeded synthetic dataset in UCF101's on-disk format"),
    "extract": ("tsn.flow.cli", "frames + TV-L1/DIS/warped flow as dense_flow made them"),
    "lists": ("tsn.data.lists_cli", "TSN file lists from official split files + frames"),
}


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered sub-command."""
    parser = argparse.ArgumentParser(prog="tsn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run,
                         _trailing=getattr(module, "TRAILING_POSITIONALS", None))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `tsn` console script.

    A sub-command whose module sets `TRAILING_POSITIONALS = "<dest>"` (a nargs="*" positional)
    also takes those values after its options: `tsn train CONFIG --resume data.split=2` works
    like `tsn train CONFIG data.split=2 --resume` (plain argparse stops the list at the first
    option and rejects the rest).
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    dest = getattr(args, "_trailing", None)
    stray = [a for a in extra if a.startswith("-")] if dest else extra
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        setattr(args, dest, list(getattr(args, dest)) + extra)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
