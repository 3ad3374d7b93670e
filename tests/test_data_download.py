"""tsn.download against a local http.server on 127.0.0.1 (Range resume, mirror fallback,
checksum), and tsn.data.prepare's unpacking and missing-tool message. No network."""

from __future__ import annotations

import hashlib
import http.server
import io
import struct
import threading
import zipfile
import zlib

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


def rar4_stored(files: dict[str, bytes]) -> bytes:
    """A RAR 4 archive holding `files` uncompressed ("store" method), the format of the
    2012-2013 UCF101 / HMDB51 archives; paths use '\\' as RAR does (RAR technote 2.9).

    Written here because no free tool creates RAR files; unar checks every CRC it carries.
    """
    def block(head_type: int, flags: int, body: bytes) -> bytes:
        head = struct.pack("<BHH", head_type, flags, 7 + len(body)) + body
        return struct.pack("<H", zlib.crc32(head) & 0xFFFF) + head  # HEAD_CRC: low 16 bits

    out = [b"Rar!\x1a\x07\x00", block(0x73, 0, bytes(6))]  # marker, archive header
    dos_time = (32 << 25) | (1 << 21) | (1 << 16)  # 2012-01-01
    for name, data in files.items():
        raw = name.replace("/", "\\").encode()
        # PACK_SIZE UNP_SIZE HOST_OS(3 unix) FILE_CRC FTIME UNP_VER(2.0) METHOD(0x30 store)
        # NAME_SIZE ATTR; flag 0x8000: the block is followed by PACK_SIZE data bytes
        body = struct.pack("<IIBIIBBHI", len(data), len(data), 3, zlib.crc32(data), dos_time,
                           20, 0x30, len(raw), 0o100644) + raw
        out += [block(0x74, 0x8000, body), data]
    out.append(block(0x7B, 0x4000, b""))  # end of archive
    return b"".join(out)


def test_prepare_ucf101_unpacks_the_rar_and_a_rerun_downloads_nothing(server, tmp_path,
                                                                      monkeypatch):
    video = b"RIFF....AVI " * 50
    Handler.files["UCF101.rar"] = rar4_stored({
        "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi": video,
        "UCF-101/YoYo/v_YoYo_g25_c05.avi": video[::-1]})
    monkeypatch.setenv("UCF101_URL", f"{server}/UCF101.rar")
    monkeypatch.setenv("UCF101_SPLITS_URL", f"{server}/zip")
    root = tmp_path / "ucf101"
    assert prepare.main(["ucf101", "--root", str(root)]) == 0
    assert (root / "UCF-101" / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c01.avi").read_bytes() \
        == video
    assert (root / "UCF-101" / "YoYo" / "v_YoYo_g25_c05.avi").read_bytes() == video[::-1]
    assert (root / "ucfTrainTestlist" / "classInd.txt").exists()
    requests = len(Handler.ranges)
    assert prepare.main(["ucf101", "--root", str(root)]) == 0
    assert len(Handler.ranges) == requests  # both steps marked done


def test_prepare_hmdb51_unpacks_the_rar_of_class_rars(server, tmp_path, monkeypatch):
    Handler.files["splits.rar"] = rar4_stored({
        "testTrainMulti_7030_splits/brush_hair_test_split1.txt": b"a.avi 1 \r\n"})
    Handler.files["hmdb51_org.rar"] = rar4_stored({
        "brush_hair.rar": rar4_stored({"brush_hair/a.avi": b"video a"}),
        "cartwheel.rar": rar4_stored({"cartwheel/b.avi": b"video b"})})
    monkeypatch.setenv("HMDB51_SPLITS_URL", f"{server}/splits.rar")
    monkeypatch.setenv("HMDB51_URL", f"{server}/hmdb51_org.rar")
    root = tmp_path / "hmdb51"
    assert prepare.main(["hmdb51", "--root", str(root)]) == 0
    assert (root / "videos" / "brush_hair" / "a.avi").read_bytes() == b"video a"
    assert (root / "videos" / "cartwheel" / "b.avi").read_bytes() == b"video b"
    assert (root / "testTrainMulti_7030_splits" / "brush_hair_test_split1.txt").exists()


def test_damaged_rar_names_the_archive_and_what_to_do(tmp_path):
    good = rar4_stored({"UCF-101/A/v.avi": b"0123456789" * 20})
    bad = tmp_path / "UCF101.rar"
    bad.write_bytes(good.replace(b"0123456789", b"0123456780", 1))  # CRC no longer matches
    with pytest.raises(prepare.PrepareError, match=r"UCF101\.rar: unar failed .*damaged download"):
        prepare.unpack(bad, tmp_path / "out")
