"""tsn.download against a local http.server on 127.0.0.1 (Range resume, mirror fallback,
checksum), and tsn.data.prepare's unpacking and missing-tool message. No network."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile

import pytest

from tsn import download as dl
from tsn.data import prepare

PAYLOAD = bytes(range(256)) * 4000  # ~1 MB


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves /file (Range-aware), /drop (first full request cut short), /chunked (first
    request a chunked body cut short), /zip; else 404."""

    files: dict[str, bytes] = {}
    ranges: list[str | None] = []
    dropped = False

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):  # noqa: N802 -- http.server API
        name = self.path.strip("/")
        if name not in self.files:
            self.send_error(404)
            return
        data = self.files[name]
        rng = self.headers.get("Range")
        Handler.ranges.append(rng)
        if name == "chunked" and not Handler.dropped:
            # chunked body cut inside its first chunk: http.client raises IncompleteRead
            Handler.dropped = True
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data[: len(data) // 3])
            return
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if name == "drop" and not Handler.dropped:
            Handler.dropped = True
            body = body[: len(body) // 3]  # connection closes early
        self.wfile.write(body)


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    """Keep the retry backoff, but tiny, so the tests stay fast."""
    monkeypatch.setattr(dl, "RETRY_DELAY_S", 0.01, raising=False)


@pytest.fixture()
def server():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ucfTrainTestlist/classInd.txt", "1 A\r\n")
    Handler.files = {"file": PAYLOAD, "drop": PAYLOAD, "chunked": PAYLOAD,
                     "zip": buf.getvalue()}
    Handler.ranges, Handler.dropped = [], False
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_resumes_with_range_after_a_dropped_connection(server, tmp_path):
    res = dl.download([f"{server}/drop"], tmp_path / "a.bin", progress=False)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD and res.size == len(PAYLOAD)
    assert Handler.ranges[0] is None and Handler.ranges[1].startswith("bytes=")
    assert not (tmp_path / "a.bin.part").exists()


def test_download_resumes_after_incomplete_read(server, tmp_path):
    """A cut chunked body raises http.client.IncompleteRead (not an OSError): resume, no crash."""
    res = dl.download([f"{server}/chunked"], tmp_path / "c.bin", progress=False)
    assert (tmp_path / "c.bin").read_bytes() == PAYLOAD and res.size == len(PAYLOAD)
    assert len(Handler.ranges) == 2  # the cut attempt, then the retry that completed


def test_retries_back_off(server, tmp_path, monkeypatch):
    """Attempts on one mirror are spaced by a doubling delay (a parameter; tiny here)."""
    waits = []
    monkeypatch.setattr(dl.time, "sleep", waits.append)
    err = dl._try_url(f"{server}/missing-5xx", tmp_path / "x.part", False, retry_delay_s=0.5)
    assert err is not None and waits == []  # 404: the next mirror at once
    monkeypatch.setattr(dl, "_fetch_once", lambda *a: (_ for _ in ()).throw(OSError("cut")))
    assert dl._try_url("http://x", tmp_path / "x.part", False, retry_delay_s=0.5) == "cut"
    assert waits == [0.5, 1.0]


def test_download_resumes_an_existing_part_file(server, tmp_path):
    (tmp_path / "b.bin.part").write_bytes(PAYLOAD[:1000])
    dl.download(f"{server}/file", tmp_path / "b.bin", progress=False)
    assert Handler.ranges == ["bytes=1000-"]
    assert (tmp_path / "b.bin").read_bytes() == PAYLOAD


def test_mirror_fallback_and_checksum(server, tmp_path):
    good = hashlib.sha256(PAYLOAD).hexdigest()
    res = dl.download([f"{server}/missing", f"{server}/file"], tmp_path / "c.bin",
                      expected_sha256=good, progress=False)
    assert res.url.endswith("/file") and res.sha256 == good
    with pytest.raises(dl.ChecksumMismatch, match="expected SHA-256 0000"):
        dl.download([f"{server}/file"], tmp_path / "d.bin", expected_sha256="0000",
                    progress=False)
    assert not (tmp_path / "d.bin").exists()
    with pytest.raises(dl.DownloadError, match="missing"):
        dl.download([f"{server}/missing"], tmp_path / "e.bin", progress=False)


def test_prepare_unpacks_zip_with_url_override_and_names_missing_unar(server, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setenv("UCF101_SPLITS_URL", f"{server}/nothere {server}/zip")
    prepare.fetch_and_unpack("UCF101_SPLITS_URL", "splits.zip", tmp_path, tmp_path, False)
    assert (tmp_path / "ucfTrainTestlist" / "classInd.txt").read_bytes() == b"1 A\r\n"
    assert (tmp_path / "downloads" / "splits.zip.done").exists()
    monkeypatch.setattr(prepare.shutil, "which", lambda name: None)
    (tmp_path / "x.rar").write_bytes(b"Rar!")
    with pytest.raises(prepare.PrepareError, match="needs `unar`.*make setup"):
        prepare.unpack(tmp_path / "x.rar", tmp_path / "out")
    monkeypatch.setenv("HMDB51_SPLITS_URL", f"{server}/nothere")
    assert prepare.main(["hmdb51", "--root", str(tmp_path / "h")]) == 1
