"""`tsn weights fetch` against a local HTTP server on 127.0.0.1 (never the network): resume
after a cut connection, mirror fallback, SHA-256 recorded on first download and a later
different file refused with a clear message, `--accept-new-checksum`."""

from __future__ import annotations

import argparse
import os

import pytest
from test_weights_http import LocalServer

from tsn import download as dl
from tsn.download import DownloadError, download
from tsn.weights import WeightsError
from tsn.weights.checksums import ChecksumLock
from tsn.weights.cli import add_arguments, run
from tsn.weights.fetch import fetch
from tsn.weights.manifest import WeightEntry, download_path

BODY = os.urandom(300_000)  # bytes for the downloader's own tests
TINY_PROTOTXT = """name: "tiny"
input: "data"
input_dim: 1
input_dim: 3
input_dim: 8
input_dim: 8
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "fc-action" type: "InnerProduct" bottom: "conv1" top: "fc-action"
  inner_product_param { num_output: 5 } }
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(prototxt, a caffemodel's bytes, another caffemodel's bytes): `fetch` pins a checksum
    only after the file converts, so the files it records must be real caffemodels."""
    import numpy as np

    from prototxt_port import write_caffemodel

    folder = tmp_path_factory.mktemp("tiny")
    proto = folder / "tiny.prototxt"
    proto.write_text(TINY_PROTOTXT)
    models = []
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        blobs = {"conv1": [rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
                           np.zeros(4, np.float32)],
                 "fc-action": [rng.normal(size=(5, 144)).astype(np.float32),
                               np.zeros(5, np.float32)]}
        write_caffemodel(folder / f"m{seed}.caffemodel", proto, blobs)
        models.append((folder / f"m{seed}.caffemodel").read_bytes())
    return proto, models[0], models[1]


def entry(*urls, name="m", fmt="caffemodel", prefix="", prototxt=None):
    return WeightEntry(name=name, kind="reference", format=fmt, modality="rgb",
                       dataset="ucf101", file=f"{name}.caffemodel", urls=tuple(urls),
                       sha256_prefix=prefix, prototxt=prototxt)


def sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_download_resumes_after_cut_connections(tmp_path):
    with LocalServer() as srv:
        spec = srv.add("/m.caffemodel", BODY, cut_after=70_000, cuts_left=2)
        res = download([srv.url("/m.caffemodel")], tmp_path / "m.caffemodel", progress=False)
    assert (tmp_path / "m.caffemodel").read_bytes() == BODY
    assert res.sha256 == sha(BODY)
    # first request whole file, then Range from where each cut left the partial file
    assert spec.requests == ["", "bytes=70000-", "bytes=140000-"]
    assert not (tmp_path / "m.caffemodel.part").exists()


def test_interrupted_download_resumes_in_a_later_run(tmp_path):
    dest = tmp_path / "m.caffemodel"
    cuts = dl.ATTEMPTS_PER_URL  # every attempt of this run is cut
    with LocalServer() as srv:
        srv.add("/m", BODY, cut_after=50_000, cuts_left=cuts)
        with pytest.raises(DownloadError, match=r"partial bytes kept in .*m\.caffemodel\.part"):
            download([srv.url("/m")], dest, progress=False)
        kept = 50_000 * cuts
        assert (tmp_path / "m.caffemodel.part").stat().st_size == kept and not dest.exists()
        spec = srv.add("/m", BODY)
        download([srv.url("/m")], dest, progress=False)
    assert spec.requests == [f"bytes={kept}-"] and dest.read_bytes() == BODY


def test_server_without_range_support_restarts_cleanly(tmp_path):
    with LocalServer() as srv:
        srv.add("/m", BODY, cut_after=1000, cuts_left=1, honour_range=False)
        download([srv.url("/m")], tmp_path / "m", progress=False)
    assert (tmp_path / "m").read_bytes() == BODY


def test_mirror_fallback_and_first_use_record(tmp_path, tiny):
    proto, model, _ = tiny
    lock = ChecksumLock(tmp_path / "checksums.toml")
    with LocalServer() as srv:
        dead = srv.add("/dead", status=404)
        broken = srv.add("/broken", status=503)
        srv.add("/mirror", model)
        e = entry(srv.url("/dead"), srv.url("/broken"), srv.url("/mirror"), prototxt=proto)
        res = fetch(e, tmp_path, lock, convert_to_pt=False, progress=False)
    assert dead.requests == [""]  # 404: not there, no retry
    assert len(broken.requests) == dl.ATTEMPTS_PER_URL  # 503: retried, then the next mirror
    assert res.path == download_path(e, tmp_path) and res.path.read_bytes() == model
    assert res.recorded and res.sha256 == sha(model) and res.converted is None
    assert sorted(p.name for p in res.path.parent.iterdir()) == ["m.caffemodel"]  # no .pt
    again = ChecksumLock(tmp_path / "checksums.toml").get("m")  # persisted as TOML
    assert (again.sha256, again.size, again.url) == (sha(model), len(model), srv.url("/mirror"))


def test_all_mirrors_failing_names_each_url(tmp_path):
    with LocalServer() as srv:
        srv.add("/a", status=404)
        e = entry(srv.url("/a"), "http://127.0.0.1:9/nothing-listens-here")
        with pytest.raises(WeightsError) as info:
            fetch(e, tmp_path, ChecksumLock(tmp_path / "c.toml"), convert_to_pt=False,
                  progress=False)
    msg = str(info.value)
    assert "404" in msg and "127.0.0.1:9/nothing-listens-here" in msg


def test_changed_file_is_refused_unless_accepted(tmp_path, tiny):
    proto, model, other = tiny
    lock_path = tmp_path / "checksums.toml"
    with LocalServer() as srv:
        srv.add("/m", model)
        e = entry(srv.url("/m"), prototxt=proto)
        fetch(e, tmp_path, ChecksumLock(lock_path), convert_to_pt=False, progress=False)
        download_path(e, tmp_path).unlink()
        srv.add("/m", other)  # upstream now serves something else
        with pytest.raises(WeightsError) as info:
            fetch(e, tmp_path, ChecksumLock(lock_path), convert_to_pt=False, progress=False)
        msg = str(info.value)
        assert "SHA-256 recorded on first download" in msg and sha(model) in msg
        assert "--accept-new-checksum" in msg and not download_path(e, tmp_path).exists()
        assert "recorded checksum is the wrong one" in msg  # both possible causes named
        assert ChecksumLock(lock_path).get("m").sha256 == sha(model)  # record untouched
        res = fetch(e, tmp_path, ChecksumLock(lock_path), accept_new_checksum=True,
                    convert_to_pt=False, progress=False)
    assert res.recorded and ChecksumLock(lock_path).get("m").sha256 == sha(other)


def test_mirror_with_a_damaged_copy_is_skipped(tmp_path, tiny):
    proto, model, _ = tiny
    lock = ChecksumLock(tmp_path / "checksums.toml")
    with LocalServer() as srv:
        srv.add("/good", model)
        e = entry(srv.url("/good"), prototxt=proto)
        fetch(e, tmp_path, lock, convert_to_pt=False, progress=False)
        download_path(e, tmp_path).unlink()
        srv.add("/damaged", model[:-1] + b"x")
        res = fetch(entry(srv.url("/damaged"), srv.url("/good"), prototxt=proto), tmp_path,
                    lock, convert_to_pt=False, progress=False)
    assert res.path.read_bytes() == model and not res.recorded


def test_tampered_local_file_is_refused_and_moved_aside(tmp_path, tiny):
    proto, model, _ = tiny
    lock = ChecksumLock(tmp_path / "checksums.toml")
    with LocalServer() as srv:
        srv.add("/m", model)
        e = entry(srv.url("/m"), prototxt=proto)
        fetch(e, tmp_path, lock, convert_to_pt=False, progress=False)
    path = download_path(e, tmp_path)
    path.write_bytes(b"not the file")
    with pytest.raises(WeightsError, match="differs from the one recorded") as info:
        fetch(e, tmp_path, lock, convert_to_pt=False, progress=False)
    assert str(path) in str(info.value)
    assert not path.exists() and path.with_name(path.name + ".rejected").is_file()


def test_published_hash_prefix_is_checked(tmp_path):
    with LocalServer() as srv:
        srv.add("/bn_inception-52deb4733.pth", BODY)
        e = entry(srv.url("/bn_inception-52deb4733.pth"), fmt="cadene_pth", prefix="52deb4733")
        with pytest.raises(WeightsError, match="does not start with 52deb4733"):
            fetch(e, tmp_path, ChecksumLock(tmp_path / "c.toml"), progress=False)
    assert ChecksumLock(tmp_path / "c.toml").get("m") is None  # nothing recorded


def test_cli_fetch_with_a_manifest_and_one_line_errors(tmp_path, capsys, tiny):
    proto, model, _ = tiny
    manifest = tmp_path / "manifest.toml"
    with LocalServer() as srv:
        srv.add("/x.caffemodel.v5", model)
        manifest.write_text(
            'schema = 1\n[[model]]\nname = "x"\nkind = "init"\nformat = "caffemodel"\n'
            'modality = "rgb"\ndataset = "imagenet"\nfile = "x.caffemodel"\n'
            f'urls = ["{srv.url("/gone")}", "{srv.url("/x.caffemodel.v5")}"]\n'
            f'prototxt = "{proto}"\n')
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        common = ["--manifest", str(manifest), "--dir", str(tmp_path / "w"),
                  "--lock", str(tmp_path / "lock.toml")]
        args = parser.parse_args(common + ["fetch", "x", "--no-convert", "--quiet"])
        assert run(args) == 0
        assert (tmp_path / "w" / "downloads" / "x.caffemodel").read_bytes() == model
        srv.add("/x.caffemodel.v5", b"changed")
        (tmp_path / "w" / "downloads" / "x.caffemodel").unlink()
        capsys.readouterr()
        assert run(args) == 1
    err = capsys.readouterr().err
    assert "x: no URL served a file with the SHA-256 recorded on first download" in err
    assert run(parser.parse_args(common + ["fetch", "nope"])) == 2
    assert "no weight called 'nope'" in capsys.readouterr().err



def test_cli_verify_rehashes_downloads_and_checks_the_converted_source(tmp_path, capsys, tiny):
    """`tsn weights verify`: ok after a fetch; a changed download or a .pt that was not
    converted from the pinned file is named, exit 1; a file never fetched is only reported."""
    proto, model, _ = tiny
    manifest = tmp_path / "manifest.toml"
    with LocalServer() as srv:
        srv.add("/x.caffemodel", model)
        manifest.write_text("schema = 1\n" + "".join(
            f'[[model]]\nname = "{n}"\nkind = "reference"\nformat = "caffemodel"\n'
            f'modality = "rgb"\ndataset = "ucf101"\nfile = "{n}.caffemodel"\n'
            f'urls = ["{srv.url("/x.caffemodel")}"]\nprototxt = "{proto}"\n'
            for n in ("x", "never")))
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        common = ["--manifest", str(manifest), "--dir", str(tmp_path / "w"),
                  "--lock", str(tmp_path / "lock.toml")]
        assert run(parser.parse_args(common + ["fetch", "x", "--quiet"])) == 0
    capsys.readouterr()
    verify = parser.parse_args(common + ["verify"])
    assert run(verify) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("x: ok (sha256 ") and out[0].endswith("x.pt converted from it")
    assert out[1] == "never: not downloaded"
    download = tmp_path / "w" / "downloads" / "x.caffemodel"
    download.write_bytes(model + b"\0")
    assert run(verify) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("x: MISMATCH: ") and "1 file(s) do not match" in captured.err
    download.write_bytes(model)
    (tmp_path / "w" / "x.pt").write_bytes(b"not a checkpoint")
    assert run(parser.parse_args(common + ["verify", "x"])) == 1
    assert "x.pt was converted from an unreadable file (" in capsys.readouterr().out


def test_downloaded_init_style_caffemodel_is_converted_with_allowed_missing_layer(tmp_path):
    import dataclasses

    import numpy as np
    import torch

    from prototxt_port import write_caffemodel
    from prototxt_port.convert import load_weights

    proto = tmp_path / "tiny.prototxt"
    proto.write_text(TINY_PROTOTXT)
    w = np.arange(108, dtype=np.float32).reshape(4, 3, 3, 3)
    write_caffemodel(tmp_path / "src.caffemodel", proto, {"conv1": [w, np.ones(4, np.float32)]})
    with LocalServer() as srv:
        srv.add("/init.caffemodel", (tmp_path / "src.caffemodel").read_bytes())
        strict = dataclasses.replace(entry(srv.url("/init.caffemodel"), name="init"),
                                     prototxt=proto)
        with pytest.raises(WeightsError, match="init: conversion of .*fc-action"):
            fetch(strict, tmp_path / "a", ChecksumLock(tmp_path / "a.toml"), progress=False)
        init = dataclasses.replace(strict, allow_missing=("fc-action",))
        res = fetch(init, tmp_path / "b", ChecksumLock(tmp_path / "b.toml"), progress=False)
    got = load_weights(res.converted)
    assert got["meta"]["missing_layers"] == ["fc-action"] and got["meta"]["sha256"] == res.sha256
    assert torch.equal(got["state_dict"]["layers.conv1.weight"], torch.from_numpy(w))
    mtime = res.converted.stat().st_mtime_ns  # a second fetch reuses file and conversion
    again = fetch(init, tmp_path / "b", ChecksumLock(tmp_path / "b.toml"), progress=False)
    assert again.converted.stat().st_mtime_ns == mtime and not again.recorded
