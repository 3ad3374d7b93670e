"""`tsn predict` and `tsn.predict`: a trained TSN on your own video files, no extraction step.

A prediction is `tsn test` on the video as `tsn extract` would have prepared it, done in
memory (docs/reproduce.md "Predict on your own video"):

* the video is decoded and its frames prepared by extraction's own functions
  (tsn/flow/batched.py: cv2.VideoCapture, 340x256 INTER_LINEAR, BGR2GRAY; `img_00001` = the
  second decoded frame, `flow_x_00001` = the flow frame 0 -> 1);
* only the files the test snippets read are made (TSNTestDataset.files): the RGB frames at the
  25 ticks, and for flow the 25 stacks of 5 pairs, so a long video costs at most 125 TV-L1
  pairs, not one per frame. Each file is encoded to the bytes extraction writes (JPEG quality
  95; flow bound 20, tsn/flow/batched.py `encode_jpeg`, `flow_jpegs`) and the test dataset
  decodes them from memory with the decoder it uses on disk (tsn.data.frames.EncodedFrames);
* the views, forward passes and averaging are tsn.evaluate.evaluate's (eval_net.py: TEST phase,
  raw fc-action logits, mean over crops then snippets, no softmax), and two streams are fused
  as `tsn fuse` fuses score files (raw logits, RGB : flow = 1 : 1.5).

So a prediction's scores are those `tsn test` writes for the same video after `tsn extract`
with the same flow method (tests/test_predict.py checks it). The video is read twice: once to
count its frames (the ticks depend on the count), once to keep the frames the ticks need.

A source is a `tsn train` run folder (its newest checkpoint; the modality and class names from
its config.json / run.json) or a converted BN-Inception weights file (`tsn weights fetch`,
`python -m prototxt_port convert`; its first conv says its modality, its fc-action the class
count). Class names come from `--classes`, `--dataset`, the run, the weights manifest entry,
or for converted weights of 101 / 51 classes the UCF101 / HMDB51 list (the released models'),
in that order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn
from tqdm import tqdm

from prototxt_port.convert import load_weights
from prototxt_port.errors import CaffeFormatError
from tsn.build import (
    build_test_dataset,
    class_names,
    load_trained,
    reference_model,
    select_device,
)
from tsn.config import to_dict
from tsn.data.errors import DataError
from tsn.data.frames import EncodedFrames
from tsn.data.splits import NUM_CLASSES, official_classes, read_class_names, video_id_of
from tsn.data.video_list import VideoRecord
from tsn.engine.precision import set_float32_mode
from tsn.evaluate import evaluate
from tsn.flow.batched import ExtractError, encode_jpeg, flow_jpegs, read_frames, selected_frames
from tsn.flow.choices import METHODS
from tsn.flow.extract import ExtractConfig
from tsn.flow.settings import flow_settings
from tsn.fusion import default_weights, fuse
from tsn.modality import get_modality, new_length_of
from tsn.report import git_commit, run_record
from tsn.scores import Protocol, VideoScores

STREAMS = ("rgb", "flow")  # --rgb and --flow: the modality each one takes
FUSION_WEIGHTS = dict(zip(STREAMS, default_weights(2)))  # the release README's 1 : 1.5
FORMAT = "tsn-predict/1"


class PredictError(ValueError):
    """An input `tsn predict` cannot use: the message is one line naming it and the fix."""


@dataclass(frozen=True)
class Stream:
    """One loaded stream: its model and where it came from."""

    name: str  # "rgb" | "flow"
    model: nn.Module
    new_length: int
    num_classes: int
    source: str  # the run folder or weights file given
    weights: str  # the checkpoint or weights file loaded
    classes: tuple[str, ...] | None  # class names the source carries
    classes_from: str  # where they come from
    record: dict  # what the weights are: the run's config and run.json, or the file's meta


# ------------------------------------------------------------------------------------------
# Sources


def _converted_classes(path: Path, meta: dict, num_classes: int) -> tuple[tuple | None, str]:
    """Class names of converted weights: the manifest entry they were fetched as, else the
    released models' dataset with that many classes (101 UCF101, 51 HMDB51)."""
    from tsn.weights.manifest import load_manifest

    try:
        for entry in load_manifest().models:
            named = meta.get("caffemodel") == entry.file or entry.name == path.stem
            if entry.kind == "reference" and named and entry.num_classes == num_classes:
                return (official_classes(entry.dataset),
                        f"{entry.dataset} (manifest entry {entry.name})")
    except ValueError:  # an unreadable manifest only loses this hint
        pass
    by_count = {n: d for d, n in NUM_CLASSES.items()}
    if num_classes in by_count:
        dataset = by_count[num_classes]
        return (official_classes(dataset),
                f"{dataset} (guessed from its {num_classes} outputs, the released {dataset} "
                "models'; --classes or --dataset to say otherwise)")
    return None, ""


def _load_converted(name: str, path: Path, device) -> Stream:
    """A converted BN-Inception (`tsn weights fetch`, `python -m prototxt_port convert`)."""
    try:
        weights = load_weights(path)
    except CaffeFormatError as err:
        hint = (" (a caffemodel: convert it first with `python -m prototxt_port convert` or "
                "`tsn weights fetch`)" if ".caffemodel" in path.name else "")
        raise PredictError(f"--{name} {path}: {err}{hint}") from None
    state = weights["state_dict"]
    if weights["layout"] != "bn_inception":
        raise PredictError(f"--{name} {path}: layout {weights['layout']!r}; predict runs "
                           "BN-Inception weights (layout bn_inception) or a `tsn train` run")
    if "fc.weight" not in state:
        raise PredictError(f"--{name} {path}: no fc-action classifier (an ImageNet init "
                           "model?); predict needs a trained TSN")
    channels = int(state["conv1.conv.weight"].shape[1])
    want = get_modality(name).in_channels
    if channels != want:
        other = next((s for s in STREAMS if get_modality(s).in_channels == channels), None)
        hint = f"{other} weights: pass them as --{other}" if other else "not a TSN stream"
        raise PredictError(f"--{name} {path}: its first conv takes {channels} input channels "
                           f"({hint}); {name} weights take {want}")
    num_classes = int(state["fc.weight"].shape[0])
    classes, classes_from = _converted_classes(path, weights.get("meta", {}), num_classes)
    model = reference_model(weights, name, device)
    return Stream(name, model, get_modality(name).new_length, num_classes, str(path), str(path),
                  classes, classes_from,
                  {"kind": "converted weights", "file": str(path), "layout": weights["layout"],
                   "meta": weights.get("meta", {})})


def _load_run(name: str, path: Path, device) -> Stream:
    """The newest checkpoint of a `tsn train` run folder."""
    if not (path / "config.json").is_file():
        raise PredictError(f"--{name} {path}: not a run folder of `tsn train` (no config.json) "
                           "nor a weights file")
    try:
        model, exp, ckpt = load_trained(path, None, device)
    except (FileNotFoundError, ValueError) as err:
        raise PredictError(f"--{name} {path}: {err}") from None
    modality = exp.model.modality
    if modality != name:
        hint = f": pass it as --{modality}" if modality in STREAMS else ""
        raise PredictError(f"--{name} {path}: a run of modality {modality}{hint}; --{name} "
                           f"takes a {name} run")
    run_json = path / "run.json"
    run = json.loads(run_json.read_text()) if run_json.is_file() else {}
    classes = run.get("classes") or class_names(exp)
    where = "run.json" if run.get("classes") else f"the {exp.data.dataset} list"
    return Stream(name, model, new_length_of(modality, exp.model.new_length),
                  exp.model.num_classes, str(path), str(ckpt),
                  tuple(classes) if classes else None, f"{where} of run {path}" if classes else "",
                  {"kind": "tsn train run", "run_dir": str(path), "checkpoint": str(ckpt),
                   "config": to_dict(exp), "run": run})


def load_stream(name: str, source: str | Path, device) -> Stream:
    """Stream `name` ("rgb" or "flow") from a run folder or a converted weights file, on
    `device`, in TEST phase; PredictError (one line) when it does not fit."""
    if name not in STREAMS:
        raise PredictError(f"stream {name!r}: use one of {STREAMS}")
    path = Path(source)
    if path.is_dir():
        stream = _load_run(name, path, device)
    elif path.is_file():
        stream = _load_converted(name, path, device)
    else:
        raise PredictError(f"--{name} {source}: no such run folder or weights file")
    stream.model.eval()
    return stream


def resolve_classes(streams: Sequence[Stream], classes: str | Path | None = None,
                    dataset: str | None = None) -> tuple[tuple[str, ...], str]:
    """(class names, where they come from) for `streams`: a names file, a dataset's official
    list, or the streams' own; PredictError when none is known or the counts disagree."""
    counts = {s.name: s.num_classes for s in streams}
    if len(set(counts.values())) > 1:
        raise PredictError("the streams output different numbers of classes ("
                           + ", ".join(f"{k} {v}" for k, v in counts.items())
                           + "): give two streams of one dataset")
    try:
        if classes is not None:
            names, origin = read_class_names(classes), f"--classes {classes}"
        elif dataset:
            names, origin = official_classes(dataset), f"--dataset {dataset}"
        else:
            known = [s for s in streams if s.classes]
            if not known:
                raise PredictError(
                    f"no class names for {streams[0].source}: pass --classes FILE "
                    "(classInd.txt or one name per line) or --dataset ucf101|hmdb51")
            if len({s.classes for s in known}) > 1:
                raise PredictError("the streams name their classes differently ("
                                   + " vs ".join(s.source for s in known)
                                   + "): pass --classes or --dataset")
            names, origin = known[0].classes, known[0].classes_from
    except DataError as err:
        raise PredictError(str(err)) from None
    for s in streams:
        if len(names) != s.num_classes:
            raise PredictError(f"{origin} names {len(names)} classes but --{s.name} "
                               f"{s.source} outputs {s.num_classes}")
    return tuple(names), origin


# ------------------------------------------------------------------------------------------
# The video


def _bar(desc: str, total, progress: bool, unit: str = "frame") -> tqdm:
    # disable=None: shown on a terminal only (scripts and logs stay clean)
    return tqdm(total=total, desc=desc, unit=unit, leave=False,
                disable=None if progress else True)


def _frame_count_hint(video: Path) -> int | None:
    import cv2

    cap = cv2.VideoCapture(str(video))
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    return n if n > 0 else None


def count_frames(video: str | Path, progress: bool = False, allow_short: bool = False) -> int:
    """Frames cv2.VideoCapture decodes from `video` (what extraction reads); ExtractError when
    it cannot be opened, yields none, or (unless `allow_short`) decodes fewer frames than its
    container declares, as `tsn extract` refuses it (tsn.flow.batched.read_frames)."""
    n = 0
    hint = _frame_count_hint(Path(video)) if progress else None  # the bar's total only
    with _bar("read", hint, progress) as bar:
        for _ in read_frames(video, allow_short):
            n += 1
            bar.update()
    return n


@dataclass(frozen=True)
class DecodedVideo:
    """What predict made of a video: the frame files its snippets read, held in memory."""

    path: str
    video_id: str
    decoded_frames: int  # frames cv2.VideoCapture gave (F)
    record: VideoRecord  # num_frames = F - 1 files of each kind, as `tsn extract` writes
    frames: EncodedFrames  # img_/flow_x_/flow_y_ files -> JPEG bytes
    flow_pairs: int  # TV-L1 / DIS pairs computed
    flow_seconds: float


def decode_video(video: str | Path, wanted: dict[str, set[int]], num_frames: int,
                 cfg: ExtractConfig, flow_batch: int = 16,
                 progress: bool = False) -> DecodedVideo:
    """Make the frame files `wanted` ({"rgb": img numbers, "flow": flow numbers}, 1-based)
    of `video` (`num_frames` decoded frames), encoded as `tsn extract` with `cfg` writes them."""
    video = Path(video)
    rgb, flow = set(wanted.get("rgb", ())), set(wanted.get("flow", ()))
    # img_k is decoded frame k (0-based); flow_k is the flow of frames k-1 -> k
    grey_needed = {k - 1 for k in flow} | flow
    files: dict[str, bytes] = {}
    greys: dict[int, np.ndarray] = {}
    needed, found = rgb | grey_needed, set()
    img_name = get_modality("rgb").files[0]
    with _bar("decode", max(needed, default=-1) + 1, progress) as bar:
        for index, bgr, grey in selected_frames(video, cfg.frame_spec, needed, bar.update):
            found.add(index)
            if index in rgb:
                files[img_name.format(index)] = encode_jpeg(bgr)
            if index in grey_needed:
                greys[index] = grey
    missing = sorted(needed - found)
    if missing:
        raise ExtractError(f"{video}: frame {missing[0]} did not decode the second time "
                           f"(the first pass counted {num_frames}); the file may be damaged")
    t0 = time.perf_counter()
    pairs = sorted(flow)
    if pairs:
        flow_fn = cfg.pairs_flow_fn()
        x_name, y_name = get_modality("flow").files
        with _bar(f"flow ({cfg.flow})", len(pairs), progress, "pair") as bar:
            for start in range(0, len(pairs), flow_batch):
                batch = pairs[start:start + flow_batch]
                flows = flow_fn(np.stack([greys[k - 1] for k in batch]),
                                np.stack([greys[k] for k in batch]))
                for k, f in zip(batch, flows, strict=True):
                    files[x_name.format(k)], files[y_name.format(k)] = flow_jpegs(f, cfg.bound)
                bar.update(len(batch))
    record = VideoRecord(str(video), num_frames - 1, 0)
    return DecodedVideo(str(video), video_id_of(str(video)), num_frames, record,
                        EncodedFrames(str(video), files), len(pairs), time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------
# Prediction


def top_k(scores: np.ndarray, classes: Sequence[str], k: int) -> list[dict]:
    """The k highest scores, best first: rank, class name, label index, score."""
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")[:k]
    return [{"rank": r + 1, "class": classes[i], "index": int(i), "score": float(scores[i])}
            for r, i in enumerate(order)]


class Predictor:
    """Loaded streams and options; call it on a video file for the prediction dict.

    `rgb` / `flow`: a `tsn train` run folder or converted BN-Inception weights (at least one).
    `classes`: a class-name file (classInd.txt or one name per line); `dataset`: "ucf101",
    "hmdb51" (official lists) or "synth"; otherwise the sources' own names. `frames` x
    `crops`: the test protocol (25 x 10, eval_net.py). `flow_method`: "tvl1" (OpenCV 2.4's
    TV-L1, gpu24 semantics: `tsn extract`'s default) or "dis" / "dis_fast" (fast, not TV-L1).
    `device`: "auto", "cpu", "cuda" (models and the TV-L1). `compile`: torch.compile the TV-L1
    iteration (same flow; pays off on long runs only). `batch`: views per forward (as
    `tsn test --batch`). `top_k`: how many classes the prediction lists. `allow_short`:
    predict a video that decodes fewer frames than its container declares (refused by
    default, as `tsn extract` refuses it).
    """

    def __init__(self, rgb: str | Path | None = None, flow: str | Path | None = None, *,
                 classes: str | Path | None = None, dataset: str | None = None,
                 frames: int = 25, crops: int = 10, flow_method: str = "tvl1",
                 device: str = "auto", compile: bool = False, batch: int = 50,
                 flow_batch: int = 16, top_k: int = 5, allow_short: bool = False,
                 progress: bool = True) -> None:
        if rgb is None and flow is None:
            raise PredictError("no stream: give --rgb SOURCE and/or --flow SOURCE (a `tsn "
                               "train` run folder or converted weights)")
        if flow_method not in METHODS:
            raise PredictError(f"flow method {flow_method!r}: use one of {METHODS}")
        if crops not in (1, 10) or frames < 1:
            raise PredictError(f"protocol {frames}x{crops}: frames >= 1 and crops 1 or 10")
        try:
            self.device = select_device(device)
        except RuntimeError as err:
            raise PredictError(str(err)) from None
        set_float32_mode("fp32")  # the release's IEEE float32 (as tsn test)
        self.streams = [load_stream(name, source, self.device)
                        for name, source in (("rgb", rgb), ("flow", flow)) if source is not None]
        self.classes, self.classes_from = resolve_classes(self.streams, classes, dataset)
        self.dataset = dataset or ""
        self.frames, self.crops, self.batch, self.progress = frames, crops, batch, progress
        self.flow_batch, self.top_k = flow_batch, max(1, top_k)
        self.flow_config = ExtractConfig(flow=flow_method, device=str(self.device),
                                         compile=compile, allow_short=allow_short)

    def protocol(self, stream: Stream) -> Protocol:
        """The tsn test protocol of one stream (what its score file would record)."""
        return Protocol(modality=stream.name, num_frames=self.frames, num_crops=self.crops,
                        weights=stream.weights, dataset=self.dataset, commit=git_commit(),
                        note="tsn predict: frames decoded in memory as tsn extract writes them")

    def _datasets(self, record: VideoRecord, frames: EncodedFrames | None) -> dict:
        """The test dataset of each stream over one in-memory video."""
        sources = {record.path: frames or EncodedFrames(record.path, {})}
        return {s.name: build_test_dataset([record], s.name, self.protocol(s), s.new_length,
                                           sources) for s in self.streams}

    def __call__(self, video: str | Path) -> dict:
        """The prediction of one video file (JSON-ready dict; see `predict`)."""
        video = Path(video)
        if not video.is_file():
            raise ExtractError(f"{video}: no such video file")
        n = count_frames(video, self.progress, self.flow_config.allow_short)
        if n < 2:
            raise ExtractError(f"{video}: only one frame decoded; `tsn extract` needs two "
                               "(its first file is the second frame)")
        record = VideoRecord(str(video), n - 1, 0)
        probe = self._datasets(record, None)  # which files the snippets read
        wanted = {name: set(ds.files(0)) for name, ds in probe.items()}
        decoded = decode_video(video, wanted, n, self.flow_config, self.flow_batch,
                               self.progress)
        datasets = self._datasets(record, decoded.frames)
        scores: dict[str, VideoScores] = {}
        for s in self.streams:
            scores[s.name] = evaluate(s.model, datasets[s.name], [decoded.video_id],
                                      self.device, self.protocol(s), self.batch,
                                      progress=False)
        return self._result(decoded, datasets, scores)

    def _result(self, decoded: DecodedVideo, datasets: dict, scores: dict) -> dict:
        k = min(self.top_k, len(self.classes))
        streams = {}
        for s in self.streams:
            vs = scores[s.name]
            streams[s.name] = {
                "source": s.source, "weights": s.weights, "modality": s.name,
                "ticks": datasets[s.name].ticks(0), "scores": vs.scores[0].tolist(),
                "top_k": top_k(vs.scores[0], self.classes, k), "record": s.record}
        fused = None
        if len(self.streams) > 1:
            weights = [FUSION_WEIGHTS[s.name] for s in self.streams]
            both = fuse([scores[s.name] for s in self.streams], weights,
                        [s.name for s in self.streams])
            fused = {"weights": {s.name: w for s, w in zip(self.streams, weights)},
                     "scores": both.scores[0].tolist(),
                     "top_k": top_k(both.scores[0], self.classes, k)}
        flow = None
        if "flow" in streams:
            flow = {"settings": flow_settings(self.flow_config),
                    "device": self.flow_config.device, "compile": self.flow_config.compile,
                    "pairs_computed": decoded.flow_pairs,
                    "seconds": round(decoded.flow_seconds, 3)}
        return {
            "video": decoded.path, "video_id": decoded.video_id,
            "decoded_frames": decoded.decoded_frames,
            "frame_files": decoded.record.num_frames,
            "protocol": {"frames": self.frames, "crops": self.crops, "crop_agg": "mean",
                         "sampling": "eval_net", "frame_size": [340, 256],
                         "scores": "raw fc-action logits averaged over crops then snippets "
                                   "(no softmax), as tsn test",
                         "fusion": "raw logits, rgb 1 : flow 1.5 (tsn fuse)",
                         "precision": "fp32"},
            "classes": {"names": list(self.classes), "from": self.classes_from},
            "streams": streams, "fused": fused, "flow": flow,
            "top_k": (fused or streams[self.streams[0].name])["top_k"],
        }


def predict(video: str | Path | Sequence[str | Path], rgb: str | Path | None = None,
            flow: str | Path | None = None, **options):
    """Predict the action in a video file (or each of a list of them) with TSN.

    `rgb` / `flow`: a `tsn train` run folder or a converted BN-Inception weights file (at least
    one stream; both are fused 1 : 1.5). Other options as `Predictor` (classes, dataset,
    top_k, frames, crops, flow_method, device, compile, batch, progress).

    Returns a dict per video: "top_k" (fused, or the one stream's: rank, class, index, score),
    "streams" ({"rgb": ..., "flow": ...} with the scores over all classes, top-k, ticks and
    the source's record), "fused", "classes", "protocol", "flow" (method settings as
    extract_settings.json records them, pairs computed) and the video's frame counts. Scores
    are raw averaged logits, exactly `tsn test`'s. A list of videos gives a list of dicts.
    """
    predictor = Predictor(rgb, flow, **options)
    one = isinstance(video, (str, Path))
    results = [predictor(v) for v in ([video] if one else video)]
    return results[0] if one else results


def report(results: Sequence[dict], errors: Sequence[dict] = ()) -> dict:
    """The `--json` file: every video's prediction, the failures, and what ran."""
    return {"format": FORMAT, "videos": list(results), "errors": list(errors),
            "record": run_record()}


def summary(result: dict) -> str:
    """Printable top-k of one prediction."""
    streams = result["streams"]
    what = " + ".join(f"{name}" for name in streams)
    if result["fused"]:
        what = "fused " + " : ".join(f"{n} {w:g}" for n, w in result["fused"]["weights"].items())
    flow = result["flow"]
    flow_txt = f", flow {flow['settings']['flow']}" if flow else ""
    lines = [f"{result['video']}: {result['decoded_frames']} frames, "
             f"{result['protocol']['frames']}x{result['protocol']['crops']} {what}{flow_txt}"]
    width = max(len(t["class"]) for t in result["top_k"])
    for t in result["top_k"]:
        lines.append(f"  {t['rank']:>2}. {t['class']:<{width}}  {t['score']:10.4f}")
    if len(streams) > 1:
        lines.append("      " + "   ".join(
            f"{name} top-1: {s['top_k'][0]['class']} {s['top_k'][0]['score']:.4f}"
            for name, s in streams.items()))
    return "\n".join(lines)


