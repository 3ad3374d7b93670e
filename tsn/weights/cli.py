"""`tsn weights list | fetch NAME... | verify [NAME...] | import-cadene | import-tsn-pytorch |
eval-reference`."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path

from prototxt_port.errors import CaffeFormatError
from tsn.errors import WeightsError
from tsn.weights.checksums import ChecksumLock
from tsn.weights.manifest import DEFAULT_DIR, converted_path, download_path, load_manifest

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Sub-commands of `tsn weights`."""
    parser.add_argument("--manifest", default=None, help="default: weights/manifest.toml")
    parser.add_argument("--dir", default=None, help="weights folder (default: weights/)")
    parser.add_argument("--lock", default=None, help="checksum lock (default: "
                        "weights/checksums.toml)")
    sub = parser.add_subparsers(dest="weights_command", metavar="ACTION")
    sub.required = True
    sub.add_parser("list", help="every released weight file and its local state")
    fetch = sub.add_parser("fetch", help="download, verify and convert weights to .pt")
    fetch.add_argument("names", nargs="+", help="manifest names, or all / init / reference")
    fetch.add_argument("--accept-new-checksum", action="store_true",
                       help="accept a file whose SHA-256 differs from the recorded one")
    fetch.add_argument("--no-convert", action="store_true", help="download and verify only")
    fetch.add_argument("--url", action="append", default=None,
                       help="use this URL (repeatable, tried in order) instead of the manifest's")
    fetch.add_argument("--quiet", action="store_true", help="no progress bar")
    fetch.add_argument("--timeout", type=float, default=None, metavar="S",
                       help="seconds a download may stall before the next URL is tried "
                            "(default $TSN_DOWNLOAD_TIMEOUT_S, else 30)")
    verify = sub.add_parser("verify", help="re-hash the downloaded files against the checksum "
                            "lock, and check each .pt was converted from the pinned file")
    verify.add_argument("names", nargs="*", help="manifest names, or all / init / reference "
                        "(default: all)")
    for name, what in (("import-cadene", "Cadene pretrainedmodels bninception .pth"),
                       ("import-tsn-pytorch", "tsn-pytorch checkpoint or bn_inception .pth")):
        imp = sub.add_parser(name, help=f"{what} -> .pt checked against the Caffe layout")
        imp.add_argument("path", help="the .pth / .pth.tar file")
        imp.add_argument("--out", required=True, help="output .pt")
    ev = sub.add_parser("eval-reference", help="test the reference models, expected vs measured")
    ev.add_argument("names", nargs="*", help="reference names (default: all)")
    ev.add_argument("--data-root", default="data", help="DATA_ROOT of the reproduction (data/)")
    ev.add_argument("--out-dir", default="results", help="tables go here (results/)")
    ev.add_argument("--frames", type=int, default=25, help="snippets per video (25)")
    ev.add_argument("--crops", type=int, choices=(1, 10), default=10)
    ev.add_argument("--batch", type=int, default=50, help="snippet views per forward")
    ev.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")


@contextlib.contextmanager
def _log_to(path: Path):
    """Also append this run's log to `path` (downloads and evaluations are long jobs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    loggers = [logging.getLogger("tsn"), logging.getLogger("prototxt_port")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        handler.close()


def _names(manifest, requested: list[str]) -> list:
    groups = {"all": manifest.models,
              "init": [e for e in manifest.models if e.kind == "init"],
              "reference": [e for e in manifest.models if e.kind == "reference"]}
    entries = []
    for name in requested:
        entries += groups.get(name) or [manifest.get(name)]
    return entries


def _list(manifest, args) -> int:
    lock, folder = ChecksumLock(args.lock), Path(args.dir or DEFAULT_DIR)
    print(f"{'name':48s} {'kind':9s} {'fmt':15s} {'expected':>8s}  state")
    for e in manifest.models:
        state = ("converted" if converted_path(e, folder).is_file() else
                 "downloaded" if download_path(e, folder).is_file() else "-")
        sha = lock.get(e.name)
        state += f", sha256 {sha.sha256[:12]}" if sha else ""
        exp = f"{e.expected_mca:.2f}" if e.expected_mca is not None else ""
        print(f"{e.name:48s} {e.kind:9s} {e.format:15s} {exp:>8s}  {state}")
    return 0


def _verify_one(entry, folder: Path, lock: ChecksumLock) -> tuple[str, bool]:
    """(state line, whether it is a failure) of one weight file: the download re-hashed
    against its pinned SHA-256, the converted .pt's recorded source against the same."""
    from prototxt_port.convert import load_weights
    from prototxt_port.files import sha256_of

    path, out = download_path(entry, folder), converted_path(entry, folder)
    rec = lock.get(entry.name)
    if not path.is_file():
        state, bad = "not downloaded" + (" (pinned)" if rec else ""), False
    elif rec is None:
        state, bad = (f"downloaded, not pinned (sha256 {sha256_of(path)[:12]}): `tsn weights "
                      f"fetch {entry.name}` pins it once it converts"), False
    else:
        digest = sha256_of(path)
        bad = digest != rec.sha256
        state = (f"MISMATCH: {path} has sha256 {digest}, {lock.path} pinned {rec.sha256} "
                 f"({rec.size} bytes on {rec.recorded}): delete it and `tsn weights fetch "
                 f"{entry.name}`" if bad else f"ok (sha256 {digest[:12]} as pinned)")
    if rec is not None and out.is_file():
        try:
            source = str(load_weights(out)["meta"].get("sha256", ""))
            what = f"sha256 {source[:12]}" if source else "an unrecorded file"
        except Exception as err:  # a damaged .pt: any unpickling error, said in one line
            source, what = "", f"an unreadable file ({type(err).__name__})"
        if source != rec.sha256:
            bad = True
            state += (f"; {out} was converted from {what}, not the pinned file: delete it and "
                      f"`tsn weights fetch {entry.name}`")
        else:
            state += f"; {out.name} converted from it"
    return state, bad


def _verify(manifest, args) -> int:
    """Check every named weight file against the checksum lock; exit 1 on any mismatch."""
    lock, folder = ChecksumLock(args.lock), Path(args.dir or DEFAULT_DIR)
    failures = 0
    for entry in _names(manifest, args.names or ["all"]):
        state, bad = _verify_one(entry, folder, lock)
        failures += bad
        print(f"{entry.name}: {state}")
    if failures:
        print(f"tsn weights verify: {failures} file(s) do not match {lock.path}",
              file=sys.stderr)
    return 1 if failures else 0


def _fetch(manifest, args) -> int:
    from tsn.atomic import check_writable
    from tsn.weights.fetch import fetch  # downloads, protobuf and torch: only when it runs

    lock, failed = ChecksumLock(args.lock), []
    downloads = Path(args.dir or DEFAULT_DIR) / "downloads"
    for folder in (downloads, lock.path.parent):  # before any download: one line, exit 2
        check_writable(folder)
    with _log_to(downloads / "fetch.log"):
        for entry in _names(manifest, args.names):
            try:
                res = fetch(entry, args.dir or DEFAULT_DIR, lock, args.accept_new_checksum,
                            not args.no_convert, not args.quiet,
                            tuple(args.url) if args.url else None, args.timeout)
                print(f"{entry.name}: {res.path} sha256 {res.sha256}"
                      + (f" -> {res.converted}" if res.converted else ""))
            except WeightsError as err:
                print(f"tsn weights fetch: error: {err}", file=sys.stderr)
                failed.append(entry.name)
    if failed:
        print(f"tsn weights fetch: {len(failed)} failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def _eval(manifest, args) -> int:
    from tsn.weights.reference import EvalOptions, evaluate_reference  # torch: when it runs

    opts = EvalOptions(Path(args.dir or DEFAULT_DIR), Path(args.data_root), Path(args.out_dir),
                       args.frames, args.crops, args.batch, args.device)
    with _log_to(opts.out_dir / "reference_scores" / "eval_reference.log"):
        rows = evaluate_reference(manifest, opts, tuple(args.names))
    for row in rows:
        expected, measured = row.get("expected_mca"), row.get("measured_mca")
        print(f"{row['name']}: expected {'-' if expected is None else f'{expected:.2f}'} "
              f"measured {'-' if measured is None else f'{measured:.2f}'} [{row['status']}]")
    print(f"wrote {opts.out_dir / 'reference_models.csv'} and .md")
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch `tsn weights ACTION`; every known failure is one error line, exit status 2."""
    from tsn.weights.importers import import_cadene, import_tsn_pytorch  # torch: when it runs

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.weights_command == "import-cadene":
            print(import_cadene(args.path, args.out))
            return 0
        if args.weights_command == "import-tsn-pytorch":
            print(import_tsn_pytorch(args.path, args.out))
            return 0
        manifest = load_manifest(args.manifest)
        action = {"list": _list, "fetch": _fetch, "verify": _verify, "eval-reference": _eval}
        return action[args.weights_command](manifest, args)
    except (WeightsError, CaffeFormatError, ValueError, OSError) as err:  # OSError: outputs
        print(f"tsn weights {args.weights_command}: error: {err}", file=sys.stderr)
        return 2
