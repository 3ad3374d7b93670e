"""Resumable HTTP(S) download with mirror fallback and optional SHA-256 check.

Stable interface (also used by tsn.weights):

    download(url_list, dest, expected_sha256=None, progress=True) -> DownloadResult

* `url_list`: one URL or a list of mirrors, tried in order until one serves the file.
* Bytes go to `<dest>.part`; an interrupted download resumes from there with an HTTP Range
  request (a server that ignores Range sends the whole file again, which is detected); the
  finished file is moved to `dest` with os.replace, so `dest` is never half-written.
* `expected_sha256`: the file is hashed; a mismatch deletes it and tries the next mirror;
  when no mirror serves the right bytes, ChecksumMismatch (a DownloadError) is raised.
* Any other failure of every mirror raises DownloadError naming each URL and its error, and
  says whether a `.part` file was kept for the next run.
* Stalls are bounded: a connect or a read that waits longer than the stall timeout fails
  (`timeout_s`, default $TSN_DOWNLOAD_TIMEOUT_S or STALL_TIMEOUT_S); a server that accepted the
  connection but sent nothing in that time is not retried (the next mirror is tried at once),
  one that stalled after sending bytes is resumed like a cut connection.
* Progress: a byte bar (tqdm; `progress=False` hides it) and one log line per URL tried.
"""

from __future__ import annotations

import http.client
import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from prototxt_port.files import sha256_of

log = logging.getLogger(__name__)

CHUNK = 1 << 20
STALL_TIMEOUT_S = 30.0  # default: seconds a connect or a read may wait for the server
TIMEOUT_ENV = "TSN_DOWNLOAD_TIMEOUT_S"  # overrides STALL_TIMEOUT_S (tsn weights fetch, make data)
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


def stall_timeout(timeout_s: float | None = None) -> float:
    """The stall timeout in seconds: `timeout_s`, else $TSN_DOWNLOAD_TIMEOUT_S, else
    STALL_TIMEOUT_S; a value that is not a positive number raises DownloadError."""
    raw = timeout_s if timeout_s is not None else os.environ.get(TIMEOUT_ENV, STALL_TIMEOUT_S)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = -1.0
    if not value > 0:
        raise DownloadError(f"stall timeout {raw!r} (${TIMEOUT_ENV}): use a number of seconds "
                            "> 0")
    return value


def _is_stall(err: BaseException) -> bool:
    """True for a socket timeout, raw or wrapped by urllib."""
    reason = getattr(err, "reason", None)
    return isinstance(err, TimeoutError) or isinstance(reason, TimeoutError)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _fetch_once(url: str, part: Path, progress: bool, timeout_s: float = STALL_TIMEOUT_S) -> None:
    """Append the rest of `url` to `part` (Range from its current size)."""
    start = _size(part)
    req = urllib.request.Request(url, headers={"User-Agent": "tsn-repro"})
    if start:
        req.add_header("Range", f"bytes={start}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout_s)
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
            total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
            disable=not progress, desc=part.name.removesuffix(".part"),
        ) as bar:
            while True:
                # read1: what has arrived (up to CHUNK), so the bar moves and the .part file
                # grows as bytes come in (read(CHUNK) waits for a whole MiB)
                block = resp.read1(CHUNK)
                if not block:
                    break
                f.write(block)
                bar.update(len(block))
        if total is not None and part.stat().st_size < total:
            raise DownloadError(f"{url}: connection closed at {part.stat().st_size}/{total} B")


def _try_url(url: str, part: Path, progress: bool,
             retry_delay_s: float | None = None, timeout_s: float = STALL_TIMEOUT_S) -> str | None:
    """Fetch `url` into `part`, resuming up to ATTEMPTS_PER_URL times; the error, or None.

    Waits retry_delay_s (default RETRY_DELAY_S), then twice that, ... between attempts. A
    server that sends nothing for `timeout_s` is given up at once (no retry).
    """
    delay = RETRY_DELAY_S if retry_delay_s is None else retry_delay_s
    err: Exception | None = None
    log.info("downloading %s (a stall of %g s fails over)", url, timeout_s)
    for attempt in range(ATTEMPTS_PER_URL):
        if attempt:
            time.sleep(delay * 2 ** (attempt - 1))
        before = _size(part)
        try:
            _fetch_once(url, part, progress, timeout_s)
            return None
        except urllib.error.HTTPError as e:
            if 400 <= e.code < 500:  # not there: no point retrying this mirror
                return str(e)
            err = e
        # http.client.HTTPException is not an OSError: a connection cut inside a chunked body
        # raises IncompleteRead, a garbled reply BadStatusLine; both deserve a resumed retry
        except (OSError, urllib.error.URLError, http.client.HTTPException, DownloadError) as e:
            err = e
            if _is_stall(e) and _size(part) <= before:  # accepted, then silence: no retry
                return f"no data for {timeout_s:g} s (stalled; ${TIMEOUT_ENV} sets the limit)"
        log.warning("%s (attempt %d): %s", url, attempt + 1, err)
    if isinstance(err, http.client.HTTPException):  # their str() may be empty or bare
        return f"{type(err).__name__}: {err}"
    return str(err)


def download(url_list, dest: str | os.PathLike, expected_sha256: str | None = None,
             progress: bool = True, timeout_s: float | None = None) -> DownloadResult:
    """Download the first mirror that works to `dest` (resumable, atomic, checked);
    `timeout_s`: the stall timeout (`stall_timeout`)."""
    urls = [url_list] if isinstance(url_list, str) else list(url_list)
    if not urls:
        raise DownloadError(f"{dest}: no URL given")
    timeout_s = stall_timeout(timeout_s)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    errors, mismatches = [], []
    for url in urls:
        err = _try_url(url, part, progress, timeout_s=timeout_s)
        if err is not None:
            errors.append(f"{url}: {err}")
            continue
        digest = sha256_of(part)
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
    size = _size(part)
    kept = (f"{size} partial bytes kept in {part}: the next run resumes them" if size
            else "no partial file kept")
    if part.exists() and not size:
        part.unlink()
    raise DownloadError(f"{dest}: every URL failed ({kept}): " + "; ".join(errors))
