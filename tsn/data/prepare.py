"""`make data-ucf101` / `make data-hmdb51`: download (resumable) and unpack the official files.

    python -m tsn.data.prepare ucf101 --root data/ucf101
    python -m tsn.data.prepare hmdb51 --root data/hmdb51

URLs (docs/datasets_and_ports.md#ucf101, #hmdb51) can be overridden by environment variables holding
one or more space-separated mirrors: UCF101_URL, UCF101_SPLITS_URL, HMDB51_URL, HMDB51_SPLITS_URL.
RAR archives are unpacked with `unar` (Debian package unar; `make setup` installs it): it reads the
RAR3/4 format of these 2012-2013 archives (docs/datasets_and_ports.md#unpacking-the-archives).
HMDB51's archive holds one RAR per class, unpacked in a second pass. A finished step leaves a
`.done` marker and is skipped.

Result, in the data layout (tsn.data.layout, which accepts the archives' folder names):
ucf101: <root>/UCF-101/<Class>/*.avi (the videos) and <root>/ucfTrainTestlist/ (the splits);
hmdb51: <root>/videos/<class>/*.avi and <root>/testTrainMulti_7030_splits/. <root> defaults to
data/<dataset>; the next steps (`tsn extract`, `tsn lists`) are printed at the end.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tsn.data.layout import DatasetLayout, layout
from tsn.download import DownloadError, download

log = logging.getLogger(__name__)

URLS = {
    "UCF101_URL": ("https://www.crcv.ucf.edu/data/UCF101/UCF101.rar",
                   "https://www.crcv.ucf.edu/datasets/human-actions/ucf101/UCF101.rar"),
    "UCF101_SPLITS_URL": (
        "https://www.crcv.ucf.edu/data/UCF101/UCF101TrainTestSplits-RecognitionTask.zip",
        "https://www.crcv.ucf.edu/wp-content/uploads/2019/03/"
        "UCF101TrainTestSplits-RecognitionTask.zip"),
    "HMDB51_URL": ("http://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/hmdb51_org.rar",),
    "HMDB51_SPLITS_URL": (
        "http://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/test_train_splits.rar",),
}


class PrepareError(RuntimeError):
    """A download or unpack step that cannot go on; the message says what to do."""


def urls_for(key: str) -> list[str]:
    """Mirrors for an archive: the environment override, else the official URLs."""
    env = os.environ.get(key, "").split()
    return env or list(URLS[key])


def unpack(archive: Path, dest: Path) -> None:
    """Unpack a .zip (Python) or .rar (unar) into `dest`; missing tool -> PrepareError."""
    dest.mkdir(parents=True, exist_ok=True)
    if archive.suffix.lower() == ".zip":
        with zipfile.ZipFile(archive) as z:
            z.extractall(dest)
        return
    tool = shutil.which("unar")
    if tool is None:
        raise PrepareError(
            f"{archive}: unpacking RAR needs `unar`, which is not installed: run `make setup` "
            "(or `sudo apt-get install unar`) and rerun; the download is kept")
    res = subprocess.run([tool, "-quiet", "-force-overwrite", "-no-directory", "-output-directory",
                          str(dest), str(archive)], capture_output=True, text=True)
    if res.returncode != 0:
        said = " ".join((res.stderr.strip() or res.stdout.strip()).split())  # one line
        raise PrepareError(f"{archive}: unar failed ({said}); a RAR5 archive or a damaged "
                           "download? delete it and rerun")


def fetch_and_unpack(key: str, name: str, root: Path, dest: Path, progress: bool = True) -> Path:
    """Download archive `name` (mirrors from `key`) to <root>/downloads and unpack to `dest`."""
    marker = root / "downloads" / f"{name}.done"
    archive = root / "downloads" / name
    if marker.exists():
        log.info("%s already unpacked", name)
        return dest
    if not archive.exists():
        try:
            download(urls_for(key), archive, progress=progress)
        except DownloadError as err:
            raise PrepareError(f"{name}: download failed: {err}. Set {key} to a mirror "
                               "(space-separated list) or put the archive at "
                               f"{archive} and rerun") from None
    unpack(archive, dest)
    marker.touch()
    return dest


def prepare_ucf101(root: Path, progress: bool = True) -> None:
    """UCF101 videos and the official split folder under `root`."""
    fetch_and_unpack("UCF101_SPLITS_URL", "UCF101TrainTestSplits-RecognitionTask.zip", root,
                     root, progress)
    fetch_and_unpack("UCF101_URL", "UCF101.rar", root, root, progress)


def prepare_hmdb51(root: Path, progress: bool = True) -> None:
    """HMDB51 videos (two RAR levels) and the split folder under `root`."""
    fetch_and_unpack("HMDB51_SPLITS_URL", "test_train_splits.rar", root, root, progress)
    inner = fetch_and_unpack("HMDB51_URL", "hmdb51_org.rar", root, root / "class_rars", progress)
    for rar in sorted(inner.glob("*.rar")):
        marker = rar.with_suffix(".done")
        if not marker.exists():
            unpack(rar, root / "videos")  # each holds <class>/<video>.avi
            marker.touch()


def main(argv: list[str] | None = None) -> int:
    """CLI entry (`make data-ucf101`, `make data-hmdb51`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=("ucf101", "hmdb51"))
    parser.add_argument("--root", default=None,
                        help="the dataset folder (default: data/<dataset>, tsn.data.layout)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    root = Path(args.root) if args.root else layout(args.dataset).base
    try:
        (prepare_ucf101 if args.dataset == "ucf101" else prepare_hmdb51)(root)
    except PrepareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    where = DatasetLayout(root.parent, root.name)
    print(f"{args.dataset} ready under {root}. Next: frames and TV-L1 flow, then the lists:\n"
          f"  tsn extract --src {where.videos} --out {where.frames('flow')} --flow tvl1\n"
          f"  tsn lists --dataset {args.dataset} --root {where.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
