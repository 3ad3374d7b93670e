"""`make eval-reference`: test the converted reference models and compare with the manifest.

For every reference entry (dataset x split x modality) the converted .pt is loaded into the
hand-written BN-Inception, run over the split's test list with `tsn test`'s protocol
(tsn.evaluate: 25 frames x 10 crops by default, raw-logit averaging, mean class accuracy), and
the score file is kept; the manifest's `[[fusion]]` pairs are then fused (raw logits, RGB:flow
1:1.5). `results/reference_models.{csv,md}` list expected vs measured for every row, with the
reason when a row could not run (weights not fetched, dataset not extracted). Finished rows are
reused when their score file was made from the same weights (SHA-256) and protocol, so an
interrupted run resumes where it stopped. When none of the asked models is fetched, or none
could run, `NothingEvaluated` says why in one line and no table is written
(docs/reliability.md).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from prototxt_port.convert import load_weights
from tsn.build import build_test_dataset, reference_model, select_device
from tsn.data.layout import layout
from tsn.data.video_list import read_file_list
from tsn.engine.precision import set_float32_mode
from tsn.errors import WeightsError
from tsn.evaluate import check_test_list, evaluate, partial_path
from tsn.fusion import fuse
from tsn.metrics import mean_class_accuracy, video_top1
from tsn.report import git_commit, run_record, write_csv, write_markdown
from tsn.scores import Protocol, ScoreFileError, load_scores, save_scores
from tsn.stats import scores_interval
from tsn.weights.fetch import convert, converted_path, download_path
from tsn.weights.manifest import Manifest, WeightEntry

log = logging.getLogger(__name__)
MAX_NAMED = 3  # models named in a one-line error (the count says how many more)
COLUMNS = ("name", "dataset", "split", "modality", "expected_mca", "measured_mca", "ci_low",
           "ci_high", "delta", "expected_in_interval", "top1", "videos", "protocol", "status",
           "expected_source")


class NothingEvaluated(WeightsError):
    """No asked reference model could be evaluated (weights not fetched, data not prepared);
    no table is written."""


@dataclass(frozen=True)
class EvalOptions:
    """Where things are and which protocol to run."""

    weights_dir: Path
    data_root: Path  # <data_root>/<dataset>/lists/<dataset>_<modality>_val_split_<k>.txt
    out_dir: Path  # results/ (tables) ; score files under out_dir/reference_scores/
    num_frames: int = 25
    num_crops: int = 10
    batch: int = 50
    device: str = "cpu"
    progress: bool = True


def test_list(entry: WeightEntry, data_root: Path) -> Path:
    """The test file list of `entry` in the data layout (tsn.data.layout)."""
    return layout(entry.dataset, data_root).list_path(entry.modality, "val", entry.split)


def evaluate_entry(entry: WeightEntry, opts: EvalOptions) -> dict:
    """One reference model -> a result row (measured numbers or the reason it did not run)."""
    row = {"name": entry.name, "dataset": entry.dataset, "split": entry.split,
           "modality": entry.modality, "expected_mca": entry.expected_mca,
           "expected_source": entry.expected_source,
           "protocol": f"{opts.num_frames}x{opts.num_crops} mean"}
    pt = converted_path(entry, opts.weights_dir)
    if not pt.is_file():
        raw = download_path(entry, opts.weights_dir)
        if not raw.is_file():
            return {**row, "status": f"weights missing: run `tsn weights fetch {entry.name}`"}
        convert(entry, raw, pt)
    listing = test_list(entry, opts.data_root)
    if not listing.is_file():
        ds = entry.dataset
        return {**row, "status": (
            f"no test list {listing}: `make data-{ds}` (videos + splits), `tsn extract` "
            f"(frames + TV-L1 flow), then `tsn lists --dataset {ds} --root {opts.data_root}` "
            "(docs/weights.md, tsn.data.layout)")}
    weights = load_weights(pt)
    sha = weights["meta"].get("sha256", "")
    protocol = Protocol(modality=entry.modality, num_frames=opts.num_frames,
                        num_crops=opts.num_crops, weights=f"{entry.name}@{sha[:16]}",
                        dataset=entry.dataset, split=entry.split, commit=git_commit())
    score_file = opts.out_dir / "reference_scores" / f"{entry.name}.npz"
    vs = None
    if score_file.is_file():
        try:
            old = load_scores(score_file)
            same = (old.protocol.weights, old.protocol.label) == (protocol.weights, protocol.label)
            vs = old if same else None
        except ScoreFileError:
            vs = None
        if vs is not None:
            log.info("%s: reusing %s", entry.name, score_file)
    if vs is None:
        device = select_device(opts.device)
        set_float32_mode("fp32")  # the release's float32 (PyTorch defaults to TF32 convs)
        model = reference_model(weights, entry.modality, device)
        records = read_file_list(listing, num_classes=entry.num_classes)
        check_test_list(records, listing, entry.num_classes, entry.modality)
        dataset = build_test_dataset(records, entry.modality, protocol, None)
        ids = [Path(r.path).name for r in records]
        partial = partial_path(score_file)  # resumes an interrupted evaluation
        vs = evaluate(model, dataset, ids, device, protocol, opts.batch, progress=opts.progress,
                      partial=partial)
        save_scores(score_file, vs)
        partial.unlink(missing_ok=True)
    return {**row, **_measured(vs, entry.expected_mca, mean_class_accuracy, video_top1),
            "status": f"ok ({score_file.name})"}


def _measured(vs, expected, mca, top1) -> dict:
    """Measured mean class accuracy with its 95% interval (tsn/stats.py), top-1, and whether
    the expected number lies in the interval."""
    measured = 100.0 * mca(vs.scores, vs.labels)
    ci = scores_interval(vs.scores, vs.labels)
    low, high = round(100 * ci.low, 2), round(100 * ci.high, 2)
    return {"measured_mca": round(measured, 2), "ci_low": low, "ci_high": high,
            "top1": round(100.0 * top1(vs.scores, vs.labels), 2), "videos": len(vs.video_ids),
            "delta": None if expected is None else round(measured - expected, 2),
            "expected_in_interval": None if expected is None else
            ("inside" if low <= expected <= high else "outside")}


def fuse_rows(manifest: Manifest, opts: EvalOptions) -> list[dict]:
    """Rows for the manifest's fusion pairs whose member score files exist."""
    rows = []
    for fusion in manifest.fusions:
        files = [opts.out_dir / "reference_scores" / f"{m}.npz" for m in fusion.members]
        row = {"name": " + ".join(f"{w:g}*{m}" for w, m in zip(fusion.weights, fusion.members)),
               "dataset": fusion.dataset, "split": fusion.split, "modality": "fused",
               "expected_mca": fusion.expected_mca, "expected_source": fusion.expected_source}
        if not all(f.is_file() for f in files):
            rows.append({**row, "status": "members not evaluated"})
            continue
        vs = fuse([load_scores(f) for f in files], fusion.weights, [f.name for f in files])
        rows.append({**row, **_measured(vs, fusion.expected_mca, mean_class_accuracy,
                                        video_top1),
                     "protocol": vs.protocol.label, "status": "ok"})
    return rows


def evaluate_reference(manifest: Manifest, opts: EvalOptions,
                       names: tuple[str, ...] = ()) -> list[dict]:
    """Evaluate the reference models (all, or `names`), fuse, write the csv + md tables."""
    entries = [manifest.get(n) for n in names] if names else [
        e for e in manifest.models if e.kind == "reference"]
    fetched = [e for e in entries if converted_path(e, opts.weights_dir).is_file()
               or download_path(e, opts.weights_dir).is_file()]
    if not fetched:
        raise NothingEvaluated(
            f"none of the {len(entries)} reference model(s) is fetched under "
            f"{opts.weights_dir} ({_named([e.name for e in entries])}): run `make weights "
            "WEIGHTS=reference` (all) or `tsn weights fetch NAME`; nothing was evaluated")
    rows = []
    for entry in entries:
        log.info("%s ...", entry.name)
        rows.append(evaluate_entry(entry, opts))
        log.info("%s: %s", entry.name, rows[-1]["status"])
    if not any(r.get("measured_mca") is not None for r in rows):
        reasons = "; ".join(f"{r['name']}: {r['status']}" for r in rows[:MAX_NAMED])
        raise NothingEvaluated(f"nothing was evaluated, no table written: {reasons}"
                               + (f"; and {len(rows) - MAX_NAMED} more" if len(rows) > MAX_NAMED
                                  else ""))
    rows += fuse_rows(dataclasses.replace(manifest, fusions=tuple(
        f for f in manifest.fusions if all(m in {e.name for e in entries} for m in f.members))),
        opts)
    write_csv(opts.out_dir / "reference_models.csv", rows, COLUMNS)
    notes = ["Expected numbers: split 1 of the Caffe reference models converted to PyTorch "
             "(caffe2pytorch-tsn README, 25x10, mean class accuracy); splits 2 and 3 have no "
             "published per-split number. Single-split single-modality numbers vary by about "
             "1 point (docs/caffe_release.md#released-models).",
             "ci_low-ci_high: 95% interval of the measured mean class accuracy, the test set's "
             "finite size only (tsn/stats.py); expected_in_interval: whether the expected number "
             "lies inside it."]
    write_markdown(opts.out_dir / "reference_models.md", "Released TSN reference models",
                   rows, COLUMNS, notes, run_record())
    return rows


def _named(names: list[str]) -> str:
    """The first MAX_NAMED names, and how many more."""
    more = len(names) - MAX_NAMED
    return ", ".join(names[:MAX_NAMED]) + (f" and {more} more" if more > 0 else "")
