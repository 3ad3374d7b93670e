"""weights/manifest.toml: every released model, its URLs, prototxt, preprocessing, expectations;
the shipped prototxts; and one clear error per malformed manifest."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from prototxt_port import parse_prototxt
from tsn.weights import WeightsError, load_manifest
from tsn.weights.manifest import DEFAULT_MANIFEST

REPO = Path(__file__).resolve().parents[1]
PROTO = REPO / "weights" / "prototxt"
UCF_BLOBS = {  # git blob hashes of the release files (weights/prototxt/SOURCE.md)
    "tsn_bn_inception_rgb_deploy.prototxt": "d8f8f5893cd9b579f38f010683e5fce3ff839a75",
    "tsn_bn_inception_rgb_train_val.prototxt": "515eb1fd42fe0a30b87a0489326cc3c908d72b1c",
    "tsn_bn_inception_flow_deploy.prototxt": "f546e1c91084ae02d63429e6be5f8d35b0db080f",
    "tsn_bn_inception_flow_train_val.prototxt": "e6138cdc67b086887fdb68cfed40460a5d78e61f",
}
SPLIT1 = {("ucf101", "rgb"): 86.01, ("ucf101", "flow"): 87.70,
          ("hmdb51", "rgb"): 54.90, ("hmdb51", "flow"): 63.53}


def test_manifest_lists_every_released_caffemodel_with_its_urls():
    m = load_manifest()
    assert m.path == DEFAULT_MANIFEST
    refs = [e for e in m.models if e.kind == "reference"]
    assert sorted((e.dataset, e.split, e.modality) for e in refs) == sorted(
        (d, s, mod) for d in ("ucf101", "hmdb51") for s in (1, 2, 3) for mod in ("rgb", "flow"))
    for e in refs:  # get_reference_models.sh: Azure .v5 first, the old mmlab host as mirror
        assert e.urls == (
            f"https://yjxiong.blob.core.windows.net/tsn-reference-models/{e.name}.caffemodel.v5",
            f"http://mmlab.siat.ac.cn/tsn_model/{e.name}.caffemodel.v5")
        assert e.file == f"{e.name}.caffemodel"
        assert e.prototxt == PROTO / e.dataset / f"tsn_bn_inception_{e.modality}_deploy.prototxt"
        assert e.expected_mca == SPLIT1.get((e.dataset, e.modality)) if e.split == 1 \
            else e.expected_mca is None
        assert e.allow_missing == ()
    for mod, old in (("rgb", "spatial"), ("flow", "flow")):
        init = m.get(f"bn_inception_{mod}_init")
        assert init.allow_missing == ("fc-action",) and init.kind == "init"
        assert init.urls[0].endswith(f"tsn-init/bn_inception_{mod}_init.caffemodel")
        assert init.urls[1].endswith(f"tsn_model/bn_inception_{old}_var_init.caffemodel")
    fused = {(f.dataset, f.split): (f.expected_mca, f.weights) for f in m.fusions}
    assert fused == {("ucf101", 1): (93.82, (1.0, 1.5)), ("hmdb51", 1): (71.18, (1.0, 1.5))}
    assert {m.get(n).format for n in ("cadene_bninception_imagenet",
                                      "tsn_pytorch_bninception_imagenet")} == {
        "cadene_pth", "tsn_pytorch_pth"}


def test_preprocessing_is_the_prototxt_transform_param():
    m = load_manifest()
    rgb, flow = m.preprocessing["caffe_rgb"], m.preprocessing["caffe_flow"]
    text = (PROTO / "ucf101" / "tsn_bn_inception_rgb_train_val.prototxt").read_text()
    means = [float(v) for v in re.search(r"mean_value: \[([^\]]*)\]", text).group(1).split(",")]
    assert rgb["mean"] == means[:3] and rgb["channel_order"] == "BGR"
    assert flow["mean"] == [128.0]
    assert m.preprocessing["cadene_bgr"]["mean"] == [104.0, 117.0, 128.0]


def test_ucf101_prototxts_are_byte_exact_release_copies():
    for name, blob in UCF_BLOBS.items():
        out = subprocess.run(["git", "hash-object", str(PROTO / "ucf101" / name)],
                             capture_output=True, text=True, check=True).stdout.strip()
        assert out == blob, name


def test_hmdb51_prototxts_are_the_documented_substitution():
    for name in UCF_BLOBS:
        ucf = (PROTO / "ucf101" / name).read_text()
        want = ucf.replace("num_output: 101", "num_output: 51").replace("ucf101_", "hmdb51_")
        want = re.sub(r"\b101( *)\]", r"51\1]", want)
        assert (PROTO / "hmdb51" / name).read_text() == want
        assert want != ucf
        net = parse_prototxt(PROTO / "hmdb51" / name)
        fc = [lay for lay in net.layer if lay.name == "fc-action"][0]
        assert fc.inner_product_param.num_output == 51


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace('kind = "init"', 'kind = "bogus"', 1), "kind 'bogus' is not one of"),
    (lambda t: t.replace("schema = 1", "schema = 2"), "expected `schema = 1`"),
    (lambda t: t.replace('prototxt = "prototxt/ucf101/tsn_bn_inception_rgb_deploy.prototxt"',
                         'prototxt = "nowhere.prototxt"', 1), "nowhere.prototxt does not exist"),
    (lambda t: t + '\n[[model]]\nname = "x"\n', "missing key 'kind'"),
    (lambda t: t.replace("urls = [", "mirrors = [", 1), "missing key 'urls'"),
    (lambda t: t + "\n[[fusion]]\ndataset = 'a'\nsplit = 1\nmembers = ['nope']\nweights = [1]\n",
     "unknown: ['nope']"),
    (lambda t: t + "\nthis is not toml", "not valid TOML"),
])
def test_bad_manifest_gives_one_clear_error(tmp_path, edit, message):
    (tmp_path / "prototxt").symlink_to(PROTO)
    bad = tmp_path / "manifest.toml"
    bad.write_text(edit(DEFAULT_MANIFEST.read_text()))
    with pytest.raises(WeightsError, match=re.escape(message)) as info:
        load_manifest(bad)
    assert str(bad) in str(info.value)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(WeightsError, match="no weight called 'ucf101_split_4.*known: bn_incep"):
        load_manifest().get("ucf101_split_4_tsn_rgb_reference_bn_inception")
