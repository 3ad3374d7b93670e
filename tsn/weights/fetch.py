"""`tsn weights fetch`: download (resumable, mirror fallback), verify, record, convert to .pt.

Layout under the weights folder (default `weights/`): downloads in `downloads/<file>` (the name
the release scripts use), converted weights in `<name>.pt` (tsn-weights/1, loadable with
`prototxt_port.convert.load_weights`, weights_only). Nothing downloaded is ever executed:
caffemodels are parsed as protobuf, .pth files loaded with `torch.load(weights_only=True)`.

A checksum is pinned (recorded in the lock) only after the file parsed and converted: a
truncated or damaged download fails its conversion, is moved to `<file>.rejected` and never
becomes the trusted hash (with --no-convert the conversion runs into a temporary file that is
then deleted). docs/weights.md, docs/reliability.md.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import tsn.weights.bn_inception_layout  # noqa: F401 - registers the "bn_inception" layout
from prototxt_port.convert import convert_caffemodel, load_weights, sha256_of
from prototxt_port.errors import CaffeFormatError
from tsn import download as dl
from tsn.errors import WeightsError
from tsn.weights.checksums import ChecksumLock
from tsn.weights.importers import import_cadene, import_tsn_pytorch
from tsn.weights.manifest import DEFAULT_DIR, WeightEntry, converted_path, download_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchResult:
    """What `fetch` produced for one entry."""

    name: str
    path: Path  # the downloaded file
    sha256: str
    converted: Path | None  # the .pt (None with convert=False)
    recorded: bool  # True when this call wrote the checksum record


def _reject(path: Path, message: str) -> WeightsError:
    """Move a refused file aside (so the next fetch downloads afresh) and build the error."""
    rejected = path.with_name(path.name + ".rejected")
    os.replace(path, rejected)
    return WeightsError(f"{message} (kept as {rejected} for inspection)")


def verify(entry: WeightEntry, path: Path, lock: ChecksumLock, accept_new: bool) -> str:
    """SHA-256 of `path`, checked against the manifest's hash prefix and the lock."""
    digest = sha256_of(path)
    if entry.sha256_prefix and not digest.startswith(entry.sha256_prefix):
        raise _reject(path, f"{path}: SHA-256 {digest} does not start with {entry.sha256_prefix}"
                            f" (the hash in the published file name of {entry.name!r}): the "
                            "file is damaged or not the published one; fetch it again")
    if not accept_new:
        try:
            lock.check(entry.name, digest, str(path))
        except WeightsError as err:
            raise _reject(path, str(err)) from None
    return digest


def download_file(entry: WeightEntry, dest: Path, expected: str | None, progress: bool,
                  urls: tuple[str, ...] | None = None, timeout_s: float | None = None) -> str:
    """Download `entry` to `dest` trying its URLs in order; returns the URL that served it."""
    try:
        result = dl.download(list(urls or entry.urls), dest, expected_sha256=expected,
                             progress=progress, timeout_s=timeout_s)
    except getattr(dl, "ChecksumMismatch", ()) as err:
        raise WeightsError(
            f"{entry.name}: no URL served a file with the SHA-256 recorded on first download "
            f"({expected}): the different file was refused and deleted. Either the file "
            "changed upstream or arrived damaged, or the recorded checksum is the wrong one "
            "(recorded from a damaged download by a tsn that pinned before converting). If "
            f"you trust the new file, `tsn weights fetch {entry.name} --accept-new-checksum` "
            f"converts it and records its checksum instead. Details: {err}") from None
    except dl.DownloadError as err:
        raise WeightsError(f"{entry.name}: {err}") from None
    return getattr(result, "url", None) or (urls or entry.urls)[0]


def convert(entry: WeightEntry, source: Path, out: Path) -> Path:
    """Downloaded file -> tsn-weights/1 .pt, every blob / key checked against the Caffe layout."""
    try:
        if entry.format == "caffemodel":
            convert_caffemodel(entry.prototxt, source, out, allow_missing=entry.allow_missing)
        elif entry.format == "cadene_pth":
            import_cadene(source, out)
        else:
            import_tsn_pytorch(source, out)
    except CaffeFormatError as err:
        raise WeightsError(f"{entry.name}: conversion of {source} failed: {err}") from None
    return out


def _up_to_date(out: Path, digest: str) -> bool:
    """True when `out` is a .pt converted from the file with SHA-256 `digest`."""
    if not out.is_file():
        return False
    try:
        return load_weights(out)["meta"].get("sha256") == digest
    except CaffeFormatError:
        return False


def _convert_before_pinning(entry: WeightEntry, source: Path, out: Path,
                            pinned: bool) -> None:
    """Convert `source` to `out`; a file whose checksum is not pinned yet and fails is moved
    to `<file>.rejected` (a truncated or damaged download must not stay, nor be pinned)."""
    try:
        convert(entry, source, out)
    except WeightsError as err:
        if pinned:  # the trusted file itself: the conversion, not the download, is at fault
            raise
        raise _reject(source, f"{err}; its checksum was not recorded (a truncated or damaged "
                              "download? the next fetch downloads it again)") from None


def fetch(entry: WeightEntry, weights_dir: str | Path = DEFAULT_DIR,
          lock: ChecksumLock | None = None, accept_new_checksum: bool = False,
          convert_to_pt: bool = True, progress: bool = True,
          urls: tuple[str, ...] | None = None, timeout_s: float | None = None) -> FetchResult:
    """Download (or reuse) `entry`, verify its checksum, convert it, and record the checksum
    on first use once the conversion succeeded.

    A file that differs from the recorded SHA-256 is refused (moved to `<file>.rejected`) unless
    `accept_new_checksum`, which replaces the record after the conversion. `convert_to_pt=False`
    keeps no .pt (a file not yet recorded is still converted, into a temporary file, first).
    `urls` overrides the manifest's list; `timeout_s` is the download's stall timeout.
    """
    lock = lock if lock is not None else ChecksumLock()
    dest = download_path(entry, weights_dir)
    record = lock.get(entry.name)
    url = record.url if record else "(file already present)"
    if dest.is_file():
        log.info("%s: using %s", entry.name, dest)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        expected = None if accept_new_checksum or record is None else record.sha256
        url = download_file(entry, dest, expected, progress, urls, timeout_s)
    digest = verify(entry, dest, lock, accept_new_checksum)
    pinned = record is not None and record.sha256 == digest
    out = None
    if convert_to_pt:
        out = converted_path(entry, weights_dir)
        if _up_to_date(out, digest):
            log.info("%s: %s is up to date", entry.name, out)
        else:
            _convert_before_pinning(entry, dest, out, pinned)
    elif not pinned:  # never pin a file that does not convert
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".check-") as tmp:
            _convert_before_pinning(entry, dest, Path(tmp) / "check.pt", pinned)
    if not pinned:
        lock.record(entry.name, dest, digest, url)
        log.info("%s: recorded SHA-256 %s in %s", entry.name, digest, lock.path)
    return FetchResult(entry.name, dest, digest, out, not pinned)
