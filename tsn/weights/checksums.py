"""The checksum lock: SHA-256 of each weight file as first downloaded, and the refusal rule.

No checksum is published for any TSN caffemodel (docs/caffe_release.md#released-models), so
trust is established on first use: the first fetch whose file converts (tsn/weights/fetch.py)
records name -> SHA-256 (+ size, URL, date) in a TOML lock file (default
weights/checksums.toml); any later file for that name must match or is refused, unless the
caller explicitly accepts the new checksum (which rewrites the record).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from tsn.atomic import atomic_write_text
from tsn.errors import WeightsError
from tsn.weights.manifest import DEFAULT_MANIFEST, tomllib

log = logging.getLogger(__name__)
DEFAULT_LOCK = DEFAULT_MANIFEST.with_name("checksums.toml")
HEADER = (
    "# SHA-256 of each weight file as first downloaded by `tsn weights fetch` (trust on first\n"
    "# use: no checksum is published for the TSN caffemodels). A later download that differs is\n"
    "# refused; `tsn weights fetch NAME --accept-new-checksum` replaces a record.\n"
)


@dataclass(frozen=True)
class Record:
    """What was recorded for one weight file."""

    file: str
    sha256: str
    size: int
    url: str
    recorded: str  # UTC ISO date-time


class ChecksumLock:
    """Read / check / record the lock file (written atomically, keys sorted)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else DEFAULT_LOCK
        self.records: dict[str, Record] = {}
        if self.path.is_file():
            try:
                data = tomllib.loads(self.path.read_text(encoding="utf-8"))
                self.records = {name: Record(**raw) for name, raw in data.items()}
            except (tomllib.TOMLDecodeError, TypeError) as err:
                raise WeightsError(f"{self.path}: damaged checksum lock ({err}); fix or delete "
                                   "the entry by hand (it is plain TOML)") from None

    def get(self, name: str) -> Record | None:
        """The record for `name`, or None before its first download."""
        return self.records.get(name)

    def check(self, name: str, sha256: str, source: str) -> None:
        """Raise WeightsError if `name` has a record and `sha256` differs from it."""
        rec = self.records.get(name)
        if rec is not None and rec.sha256 != sha256:
            raise WeightsError(
                f"{source}: SHA-256 {sha256} differs from the one recorded for {name!r} in "
                f"{self.path} ({rec.sha256}, {rec.size} bytes from {rec.url} on {rec.recorded}). "
                "Either this file is not the one first downloaded (changed upstream, or a "
                "damaged download), or the recorded checksum is the wrong one (recorded from a "
                "damaged download by a tsn that pinned before converting): the file was not "
                "used. Retry later or from another mirror; if you trust this file, "
                f"`tsn weights fetch {name} --accept-new-checksum` converts it and records its "
                "checksum instead."
            )

    def record(self, name: str, path: Path, sha256: str, url: str) -> Record:
        """Store (or replace) the record for `name` and write the lock file."""
        rec = Record(path.name, sha256, path.stat().st_size, url,
                     _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        old = self.records.get(name)
        if old is not None and old.sha256 != sha256:
            log.warning("%s: replacing recorded SHA-256 %s by %s", name, old.sha256, sha256)
        self.records[name] = rec
        self.save()
        return rec

    def save(self) -> None:
        """Write the lock atomically (tmp + os.replace)."""
        lines = [HEADER]
        for name in sorted(self.records):
            lines.append(f"\n[{json.dumps(name)}]\n")
            for key, value in asdict(self.records[name]).items():
                lines.append(f"{key} = {json.dumps(value)}\n")  # JSON strings/ints are TOML
        atomic_write_text(self.path, "".join(lines))
