"""Resumable HTTP(S) download with mirror fallback and optional SHA-256 check.

Stable interface (also used by tsn.weights):

    download(url_list, dest, expected_sha256=None, progress=True) -> DownloadResult

* `url_list`: one URL or a list of mirrors, tried in order until one serves the file.
* Bytes go to `<dest>.part`; an interrupted download resumes from there with an HTTP Range
  request (a server that ignores Range sends the whole file again, which is detected); the
  finished file is moved to `dest` with os.replace, so `dest` is never half-written.
* `expected_sha256`: the file is hashed; a mismatch deletes it and tries the next mirror;
  when no mirror serves the right bytes, ChecksumMismatch (a DownloadError) is raised.
* Any other failure of every mirror raises DownloadError naming each URL and its error.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger(__name__)

CHUNK = 1 << 20
TIMEOUT_S = 60
ATTEMPTS_PER_URL = 3  # resumed attempts on a dropped connection before the next mirror
# first wait between attempts on one mirror, doubled after each; a server that just dropped us
# (overload, rate limit, flaky link) is more likely to answer a little later than at once
RETRY_DELAY_S = 2.0


class DownloadError(RuntimeError):
    """No URL could deliver the file; the message lists every URL tried and why."""


class ChecksumMismatch(DownloadError):
    """Files were delivered but none had the expected SHA-256."""


@dataclass(frozen=True)
class DownloadResult:
    """A finished download."""

    path: Path
    url: str  # the mirror that served it
    sha256: str
    size: int


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _fetch_once(url: str, part: Path, progress: bool) -> None:
    """Append the rest of `url` to `part` (Range from its current size)."""
    start = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "tsn-repro"})
    if start:
        req.add_header("Range", f"bytes={start}-")
    try:
        resp = urllib.request.urlopen(req, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:  # range not satisfiable: we already have it all
            return
        raise
    with resp:
        if start and resp.status != 206:
            log.info("%s ignores Range; downloading from the start", url)
            start = 0
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        with open(part, "ab" if start else "wb") as f, tqdm(
            total=total, initial=start, unit="B", unit_scale=True, disable=not progress,
            desc=part.name.removesuffix(".part"),
        ) as bar:
            while True:
                block = resp.read(CHUNK)
                if not block:
                    break
                f.write(block)
                bar.update(len(block))
        if total is not None and part.stat().st_size < total:
            raise DownloadError(f"{url}: connection closed at {part.stat().st_size}/{total} B")


def _try_url(url: str, part: Path, progress: bool,
             retry_delay_s: float | None = None) -> str | None:
    """Fetch `url` into `part`, resuming up to ATTEMPTS_PER_URL times; the error, or None.

    Waits retry_delay_s (default RETRY_DELAY_S), then twice that, ... between attempts.
    """
    delay = RETRY_DELAY_S if retry_delay_s is None else retry_delay_s
    err: Exception | None = None
    for attempt in range(ATTEMPTS_PER_URL):
        if attempt:
            time.sleep(delay * 2 ** (attempt - 1))
        try:
            _fetch_once(url, part, progress)
            return None
        except urllib.error.HTTPError as e:
            if 400 <= e.code < 500:  # not there: no point retrying this mirror
                return str(e)
            err = e
        # http.client.HTTPException is not an OSError: a connection cut inside a chunked body
        # raises IncompleteRead, a garbled reply BadStatusLine; both deserve a resumed retry
        except (OSError, urllib.error.URLError, http.client.HTTPException, DownloadError) as e:
            err = e
        log.warning("%s (attempt %d): %s", url, attempt + 1, err)
    if isinstance(err, http.client.HTTPException):  # their str() may be empty or bare
        return f"{type(err).__name__}: {err}"
    return str(err)


def download(url_list, dest: str | os.PathLike, expected_sha256: str | None = None,
             progress: bool = True) -> DownloadResult:
    """Download the first mirror that works to `dest` (resumable, atomic, checked)."""
    urls = [url_list] if isinstance(url_list, str) else list(url_list)
    if not urls:
        raise DownloadError(f"{dest}: no URL given")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    errors, mismatches = [], []
    for url in urls:
        err = _try_url(url, part, progress)
        if err is not None:
            errors.append(f"{url}: {err}")
            continue
        digest = sha256_file(part)
        if expected_sha256 and digest != expected_sha256.lower():
            mismatches.append(f"{url}: got {digest}")
            part.unlink()
            continue
        size = part.stat().st_size
        os.replace(part, dest)
        return DownloadResult(dest, url, digest, size)
    if mismatches:
        raise ChecksumMismatch(f"{dest}: expected SHA-256 {expected_sha256}; "
                               + "; ".join(mismatches + errors))
    raise DownloadError(f"{dest}: every URL failed (partial bytes kept in {part} for resume): "
                        + "; ".join(errors))
