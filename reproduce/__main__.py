"""`python -m reproduce TARGET [--rows A,B] [--data synthetic|ucf101|hmdb51] [--profile ...]`.

TARGET is table1 .. table6 or fusion. For each row: train what is missing, test, fuse, then
write `<out>/<TARGET>[-<data>-<profile>].{md,csv,png}` with the paper's numbers beside ours.
Finished runs and score files are reused (run folders under <out>/runs/<data>/<profile>/).
Exit codes: 0 done, 1 --check found a paper number outside its row's 95% interval, 2 bad
arguments or missing data.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from pathlib import Path

from reproduce import compare as cmp
from reproduce import data as data_mod
from reproduce.base import Context, run_row
from reproduce.paper import PAPER_CSV, load_paper
from reproduce.profiles import PROFILES, get_profile
from reproduce.synthetic import ensure_synthetic
from tsn import report
from tsn.engine.choices import PRECISIONS
from tsn.engine.interrupt import TrainingInterrupted
from tsn.errors import Terminated, interrupt_exit_code

log = logging.getLogger("reproduce")
TARGETS = ("table1", "table2", "table3", "table4", "table5", "table6", "fusion")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(prog="python -m reproduce", description=__doc__.splitlines()[0])
    p.add_argument("target", choices=TARGETS)
    p.add_argument("--rows", default="", help="comma-separated row names (default: all; on "
                   "synthetic data the rows that need no warped flow)")
    p.add_argument("--data", choices=data_mod.DATASETS, default="ucf101")
    p.add_argument("--profile", choices=sorted(PROFILES), default=None,
                   help="full (default for real data) | demo | tiny (default for synthetic)")
    p.add_argument("--data-root", default="data", help="folder holding <data>/splits, frames")
    p.add_argument("--out", default="results", help="where reports and runs/ are written")
    p.add_argument("--name", default=None, help="report name (default TARGET[-data-profile])")
    p.add_argument("--schedule", choices=("released", "paper"), default=None,
                   help="solver preset for the full profile (default: released)")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="fp32 (default: the release's float32), or the faster tf32 / bf16 "
                   "(deviations; the run hash and every report name them)")
    p.add_argument("--init-weights", action="append", default=[], metavar="ARCH=PATH",
                   help="converted ImageNet weights per backbone (needed by the full profile)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra tsn.config override for every run (named in the run hash)")
    p.add_argument("--launcher", default="",
                   help='prefix for training, e.g. "mpirun -np 4" (default: in this process)')
    p.add_argument("--check", action="store_true",
                   help="exit 1 if a paper number lies outside its row's 95%% interval")
    return p.parse_args(argv)


def select_rows(module, rows_arg: str, data: str) -> list[str]:
    """Row names to run: --rows, else all (synthetic: the module's SYNTHETIC_ROWS if any)."""
    if rows_arg:
        names = [r.strip() for r in rows_arg.split(",") if r.strip()]
        unknown = [n for n in names if n not in module.ROWS]
        if unknown:
            raise ValueError(f"unknown row(s) {unknown}; {module.__name__} has {list(module.ROWS)}")
        return names
    if data == "synthetic" and hasattr(module, "SYNTHETIC_ROWS"):
        return list(module.SYNTHETIC_ROWS)
    return list(module.ROWS)


def paper_row_names(module) -> dict[str, str]:
    """Module row key -> paper row name (the fusion module keys the tables' rows its own way)."""
    return {key: row.name for key, row in module.ROWS.items()}


def merge_previous(measured: list[dict], previous_csv: Path, order: list[str]) -> list[dict]:
    """Measured rows plus the previous report's rows that were not rerun, in table order.

    `make table2 ROWS=...` then updates some rows of results/table2.csv instead of
    replacing the whole table with a subset; every kept row keeps its own commit and protocol.
    """
    if not previous_csv.is_file():
        return measured
    new = {(m["row"], m["column"]) for m in measured}
    kept = [r for r in cmp.read_measured(previous_csv)
            if (r["row"], r["column"]) not in new and r["row"] in order]
    rank = {n: i for i, n in enumerate(order)}
    return sorted(measured + kept, key=lambda r: rank[r["row"]])


def _pair(text: str, flag: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise ValueError(f"{flag} {text!r}: write it as KEY=VALUE")
    return key, value


def main(argv: list[str] | None = None) -> int:
    """Run one target and write its report."""
    args = parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    profile = get_profile(args.profile or ("tiny" if args.data == "synthetic" else "full"))
    module = importlib.import_module(f"reproduce.{args.target}")
    out = Path(args.out)
    try:
        weights = dict(_pair(w, "--init-weights") for w in args.init_weights)
        extra = [*(["solver.preset=" + args.schedule] if args.schedule else []),
                 *([f"precision={args.precision}"] if args.precision else []), *args.set]
        for pair in extra:
            _pair(pair, "--set")
        if args.schedule and profile.name != "full":
            raise ValueError(f"--schedule applies to the full profile, not {profile.name!r}")
        ctx = Context(args.data, profile, Path(args.data_root), out / "runs", weights,
                      tuple(extra), args.launcher)
        names = select_rows(module, args.rows, args.data)
        if args.data == "synthetic":
            ensure_synthetic(Path(args.data_root) / "synthetic", profile)
        measured = [m for n in names for m in run_row(module.ROWS[n], ctx)]
    except (data_mod.DataMissing, ValueError, RuntimeError) as err:
        print(f"python -m reproduce {args.target}: {err}", file=sys.stderr)
        return 2
    except (TrainingInterrupted, KeyboardInterrupt) as err:  # Ctrl-C, SIGTERM (tsn.cli)
        done = f" ({err})" if isinstance(err, TrainingInterrupted) else ""
        print(f"python -m reproduce {args.target}: interrupted{done}; rerun the same command "
              "to resume", file=sys.stderr)
        return err.exit_code if isinstance(err, TrainingInterrupted) else (
            interrupt_exit_code(err))
    name = args.name or (args.target if (args.data != "synthetic" and profile.name == "full")
                         else f"{args.target}-{args.data}-{profile.name}")
    paper_name = paper_row_names(module)
    measured = merge_previous(measured, out / f"{name}.csv", list(paper_name.values()))
    rows = cmp.compare(measured, load_paper(PAPER_CSV))
    present = {r["row"] for r in rows}
    skipped = [n for n in module.ROWS if paper_name[n] not in present]
    notes = [f"Profile `{profile.name}`: {profile.description}."]
    if ctx.overrides:
        notes.append(f"Overrides for every run: {', '.join(ctx.overrides)}.")
    if skipped:
        notes.append(f"Rows not run yet: {', '.join(skipped)}"
                     + (" (on synthetic data they need warped flow: `tsn extract --warp` into "
                        "<data>/synthetic/warp_frames, then ROWS=...)."
                        if args.data == "synthetic" else "."))
    kept = sorted(present - {paper_name[n] for n in names})
    if kept:
        notes.append(f"Rows kept from the previous report (not rerun now): {', '.join(kept)}.")
    notes += [f"{n}: {module.ROWS[n].note}" for n in names if module.ROWS[n].note]
    record = report.run_record({"target": args.target, "rows": names, "data": args.data,
                                "profile": profile.name}, seed=0)
    paths = cmp.write_table_report(name, rows, out, record=record, notes=notes)
    print(report.markdown_table(rows, ("row", "column", "value (95% CI)", "paper_value",
                                       "delta", "paper_in_interval", "protocol")))
    print(f"wrote {paths['md']}, {paths['csv']}, {paths['png']}")
    if args.check and any(r["paper_in_interval"] == "outside" for r in rows):
        return 1
    return 0


def _raise_terminated(signum, frame) -> None:
    raise Terminated()  # SIGTERM stops like Ctrl-C: partial files are saved (tsn.cli does it too)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _raise_terminated)
    sys.exit(main())
