"""weights/manifest.toml -> frozen descriptions of every released weight file.

One `[[model]]` table per file (docs/caffe_release.md#released-models): its URLs (primary first,
then mirrors), the prototxt it goes with, the preprocessing family, and for the split-1 reference
models the accuracy a faithful port must reach. `[[fusion]]` tables give the expected two-stream
numbers. Every problem is reported once, naming the manifest and the entry.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from tsn.data.splits import NUM_CLASSES
from tsn.errors import WeightsError
from tsn.modality import MODALITIES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - python 3.10 (pyproject: tomli for < 3.11)
    import tomli as tomllib

DEFAULT_MANIFEST = Path(__file__).resolve().parents[2] / "weights" / "manifest.toml"
DEFAULT_DIR = DEFAULT_MANIFEST.parent  # weights/: downloads/<file> and converted <name>.pt
KINDS = ("init", "reference")
FORMATS = ("caffemodel", "cadene_pth", "tsn_pytorch_pth")


@dataclass(frozen=True)
class WeightEntry:
    """One downloadable weight file."""

    name: str
    kind: str  # init (ImageNet, no fc-action) | reference (trained TSN)
    format: str  # caffemodel | cadene_pth | tsn_pytorch_pth
    modality: str  # rgb | flow
    dataset: str  # imagenet | ucf101 | hmdb51
    file: str  # local file name under <weights dir>/downloads/
    urls: tuple[str, ...]  # primary first, then mirrors (tried in order)
    prototxt: Path | None = None  # deploy prototxt the caffemodel is checked against
    allow_missing: tuple[str, ...] = ()  # layers the file may lack (fc-action in init models)
    preprocessing: str = ""
    split: int = 0
    expected_mca: float | None = None  # mean class accuracy (%), 25x10
    expected_source: str = ""
    sha256_prefix: str = ""  # torch.hub file-name convention
    notes: str = ""

    @property
    def num_classes(self) -> int | None:
        """Classes of fc-action (None for ImageNet inits, whose classifier is not kept)."""
        return NUM_CLASSES.get(self.dataset)


@dataclass(frozen=True)
class FusionEntry:
    """Expected accuracy of a weighted two-stream fusion of manifest models."""

    dataset: str
    split: int
    members: tuple[str, ...]
    weights: tuple[float, ...]
    expected_mca: float | None
    expected_source: str = ""


@dataclass(frozen=True)
class Manifest:
    """All entries of one manifest file."""

    path: Path
    models: tuple[WeightEntry, ...]
    fusions: tuple[FusionEntry, ...] = ()
    preprocessing: dict = field(default_factory=dict)

    def get(self, name: str) -> WeightEntry:
        """The entry called `name`, or a WeightsError listing the known names."""
        for entry in self.models:
            if entry.name == name:
                return entry
        known = ", ".join(e.name for e in self.models)
        raise WeightsError(f"{self.path}: no weight called {name!r}; known: {known}")


def download_path(entry: WeightEntry, weights_dir: str | Path = DEFAULT_DIR) -> Path:
    """Where the downloaded file of `entry` lives: `<weights dir>/downloads/<file>`."""
    return Path(weights_dir) / "downloads" / entry.file


def converted_path(entry: WeightEntry, weights_dir: str | Path = DEFAULT_DIR) -> Path:
    """Where the converted .pt of `entry` lives: `<weights dir>/<name>.pt`."""
    return Path(weights_dir) / f"{entry.name}.pt"


def _entry(raw: dict, index: int, path: Path, preprocessing: dict) -> WeightEntry:
    where = f"{path}: [[model]] #{index + 1} ({raw.get('name', 'no name')})"
    for key in ("name", "kind", "format", "modality", "dataset", "file", "urls"):
        if key not in raw:
            raise WeightsError(f"{where}: missing key {key!r}")
    unknown = set(raw) - {f for f in WeightEntry.__dataclass_fields__}
    if unknown:
        raise WeightsError(f"{where}: unknown key(s) {sorted(unknown)}")
    for key, allowed in (("kind", KINDS), ("format", FORMATS), ("modality", tuple(MODALITIES))):
        if raw[key] not in allowed:
            raise WeightsError(f"{where}: {key} {raw[key]!r} is not one of {allowed}")
    urls = raw["urls"]
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
        raise WeightsError(f"{where}: urls must be a non-empty list of strings")
    prototxt = None
    if raw["format"] == "caffemodel":
        if "prototxt" not in raw:
            raise WeightsError(f"{where}: a caffemodel needs the prototxt it goes with")
        prototxt = (path.parent / raw["prototxt"]).resolve()
        if not prototxt.is_file():
            raise WeightsError(f"{where}: prototxt {prototxt} does not exist")
    if raw.get("preprocessing") and raw["preprocessing"] not in preprocessing:
        raise WeightsError(f"{where}: preprocessing {raw['preprocessing']!r} has no "
                           "[preprocessing.<name>] table")
    values = {**raw, "urls": tuple(urls), "prototxt": prototxt,
              "allow_missing": tuple(raw.get("allow_missing", ()))}
    if values.get("expected_mca") is not None:
        values["expected_mca"] = float(values["expected_mca"])
    return WeightEntry(**values)


def load_manifest(path: str | Path | None = None) -> Manifest:
    """Parse and check a manifest (default weights/manifest.toml of this checkout)."""
    path = Path(path) if path else DEFAULT_MANIFEST
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise WeightsError(f"{path}: manifest not found") from None
    except tomllib.TOMLDecodeError as err:
        raise WeightsError(f"{path}: not valid TOML ({err})") from None
    if data.get("schema") != 1:
        raise WeightsError(f"{path}: expected `schema = 1`, got {data.get('schema')!r}")
    preprocessing = data.get("preprocessing", {})
    models = tuple(_entry(raw, i, path, preprocessing)
                   for i, raw in enumerate(data.get("model", [])))
    names = [m.name for m in models]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise WeightsError(f"{path}: duplicate model name(s) {dupes}")
    fusions = []
    for i, raw in enumerate(data.get("fusion", [])):
        missing = [m for m in raw.get("members", []) if m not in names]
        if missing or len(raw.get("members", [])) != len(raw.get("weights", [])):
            raise WeightsError(f"{path}: [[fusion]] #{i + 1}: members {raw.get('members')} must "
                               f"name models of this manifest (unknown: {missing}) and match "
                               "the weights one to one")
        fusions.append(FusionEntry(raw["dataset"], int(raw["split"]), tuple(raw["members"]),
                                   tuple(float(w) for w in raw["weights"]),
                                   raw.get("expected_mca"), raw.get("expected_source", "")))
    return Manifest(path, models, tuple(fusions), preprocessing)
