"""Testing: run a trained TSN over the 25 x 10 test protocol and write a score file (`tsn test`,
whose arguments are tsn/evaluate_cli.py).

Protocol ([TSN] tools/eval_net.py, docs/caffe_release.md#testing): per video 25 snippets at the
eval_net ticks, 10 crops each (4 corners + centre of 340x256, then mirrored), one forward per
snippet batch in TEST phase (BN uses stored statistics, dropout is identity); raw `fc-action` logits
are averaged over crops (mean, or max with crop_agg=max), then over frames, with no softmax. The
optional `segment_centre` sampling takes K frames at the segment centres instead (the train_val TEST
phase). The metric is mean class accuracy; overall top-1 is reported beside it.

A long test resumes: finished videos are kept in `<out>.partial.npz` (rewritten atomically
every minute and on an error), and a rerun of the same test skips them (`--restart` does not).

Under mpirun or torchrun the ranks share the videos (tsn.engine.distributed, gloo on the CPU,
NCCL on GPUs): rank r scores every world-th of the videos not yet scored, from the r-th, and
keeps its own resume point `<out>.partial.rank<r>.npz`; rank 0 gathers the scores and writes
the score file in list order. A video's views are never batched with another video's (and BN
uses its stored statistics), so its scores do not depend on the rank that computes them: the
file equals the one-process file. A rerun, with any number of ranks, resumes from every
partial file there is.

Nothing runs on input that would waste the test (docs/reliability.md): before the first forward
pass `test_run` checks that the output folder can be written and that every list entry has a
label within the model's classes and its frames on disk (`check_test_list`, one error listing
the bad entries). If the final score file still cannot be written, the scores are kept in the
partial file when that can be written, so a rerun only writes the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from tsn.atomic import check_writable, write_error
from tsn.build import build_test_dataset, class_names, load_trained, select_device
from tsn.config import to_dict
from tsn.data.errors import DataError
from tsn.data.video_list import count_frames, read_file_list
from tsn.engine import distributed
from tsn.engine.optim import clip_mode_note
from tsn.engine.precision import autocast, precision_note, set_float32_mode
from tsn.errors import OutputError
from tsn.metrics import confusion_matrix, mean_class_accuracy
from tsn.per_class import class_names_of
from tsn.report import git_commit, run_record, write_confusion_png
from tsn.scores import Protocol, VideoScores, aggregate, load_scores, save_scores
from tsn.stats import scores_interval

log = logging.getLogger(__name__)
MAX_LISTED = 8  # bad list entries named in one error message (the count says how many more)


def check_test_list(records, list_file: str | Path, num_classes: int, modality: str) -> None:
    """Check every entry of a test list before the first forward pass: its label within
    [0, num_classes), its frame folder present, at least the listed number of the modality's
    frames on disk (flow: as many x as y files; tsn.data.video_list.count_frames). One
    DataError names the list, how many entries are bad and the first MAX_LISTED of them."""
    problems = []
    for r in records:
        name = Path(r.path).name
        if not 0 <= r.label < num_classes:
            problems.append(f"{name}: label {r.label} outside 0..{num_classes - 1} (the model "
                            f"has {num_classes} classes)")
            continue
        try:
            found = count_frames(r.path, modality)
        except DataError as err:  # folder missing, or flow x and y counts differ
            problems.append(str(err))
            continue
        if found < r.num_frames:
            problems.append(f"{name}: {found} {modality} frames in {r.path}, the list says "
                            f"{r.num_frames}")
    if problems:
        more = len(problems) - MAX_LISTED
        shown = "; ".join(problems[:MAX_LISTED]) + (f"; and {more} more" if more > 0 else "")
        raise DataError(
            f"{list_file}: {len(problems)} of {len(records)} videos cannot be tested, nothing "
            f"was run: {shown}. Labels are 0-based (classInd index - 1) and must fit the model; "
            "rebuild the list with `tsn lists`, extract missing frames with `tsn extract`, or "
            "fix --root")


def snippet_forward(model: nn.Module):
    """A function (M, L*C, H, W) -> (M, classes) of per-snippet logits for `model`: a TSN's
    `forward_snippets` (every model tsn.build makes); any other module scores snippets itself."""
    return getattr(model, "forward_snippets", model)


class _FrameChunks(torch.utils.data.Dataset):
    """Items (video index, first frame, stop frame, frames of the video, views, label): a few
    test frames of one video at a time, from a dataset with `ticks(i)` and `views(i, frames)`
    (TSNTestDataset), so that a loader item stays one forward batch in size."""

    def __init__(self, dataset, videos: Sequence[int], frames_per_item: int) -> None:
        self.dataset = dataset
        self.items = []
        for i in videos:
            n = len(dataset.ticks(i))
            self.items += [(i, start, min(n, start + frames_per_item), n)
                           for start in range(0, n, frames_per_item)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int):
        i, start, stop, n = self.items[k]
        views = self.dataset.views(i, slice(start, stop))
        return i, start, stop, n, views, self.dataset.records[i].label


class _WholeVideos(torch.utils.data.Dataset):
    """The same items from any dataset whose item is (all views of a video, label)."""

    def __init__(self, dataset, videos: Sequence[int]) -> None:
        self.dataset, self.videos = dataset, list(videos)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, k: int):
        i = self.videos[k]
        views, label = self.dataset[i]
        return i, 0, 1, 1, views, label


def _video_logits(forward, dataset, videos: Sequence[int], device: torch.device,
                  batch_snippets: int, crops: int, num_workers: int, forward_context):
    """Yield (video index, label, (views, classes) logits) for `videos`, in order."""
    if hasattr(dataset, "views") and hasattr(dataset, "ticks"):
        source = _FrameChunks(dataset, videos, max(1, batch_snippets // crops))
    else:
        source = _WholeVideos(dataset, videos)
    loader = torch.utils.data.DataLoader(source, batch_size=None, shuffle=False,
                                         num_workers=num_workers)
    pieces: list[torch.Tensor] = []
    for i, start, stop, n, views, label in loader:
        if start == 0:
            pieces = []
        with forward_context:
            pieces += [forward(chunk.to(device, non_blocking=True)).float().cpu()
                       for chunk in views.split(batch_snippets)]
        if stop == n:
            yield int(i), int(label), torch.cat(pieces)


def partial_path(out: str | Path) -> Path:
    """Where `tsn test` keeps the scores of finished videos while it runs (resume point)."""
    out = Path(out)
    return out.with_name(out.stem + ".partial.npz")


def _fingerprint(video_ids: Sequence[str], protocol: Protocol, keep_full: bool) -> str:
    """What a partial score file must match to be resumed: protocol (less `extra`, which
    holds a date), the whole video list, and whether full logits are kept."""
    fields = dataclasses.asdict(protocol)
    fields.pop("extra")
    blob = json.dumps({"protocol": fields, "videos": list(video_ids), "keep_full": keep_full},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _save_partial(path: Path, done: dict, video_ids: Sequence[str], protocol: Protocol,
                  fingerprint: str) -> None:
    order = sorted(done)
    fulls = [done[i][2] for i in order]
    vs = VideoScores(tuple(video_ids[i] for i in order),
                     np.asarray([done[i][0] for i in order], np.int64),
                     np.stack([done[i][1] for i in order]),
                     dataclasses.replace(protocol, extra={"partial_of": fingerprint}),
                     np.stack(fulls) if fulls and fulls[0] is not None else None)
    save_scores(path, vs)


def partial_files(partial: str | Path) -> list[Path]:
    """The resume points of a test: `<out>.partial.npz` and the ranks' `.partial.rank<r>.npz`
    (those that exist)."""
    partial = Path(partial)
    ranks = sorted(partial.parent.glob(f"{partial.stem}.rank*{partial.suffix}"))
    return [p for p in [partial, *ranks] if p.is_file()]


def _rank_partial(partial: Path, rank: int, world: int) -> Path:
    """Where this rank keeps its finished videos: the partial file itself in one process."""
    return partial if world == 1 else partial.with_name(f"{partial.stem}.rank{rank}"
                                                        f"{partial.suffix}")


def _load_partial(path: Path, video_ids: Sequence[str], fingerprint: str) -> dict:
    vs = load_scores(path)
    if vs.protocol.extra.get("partial_of") != fingerprint:
        raise ValueError(f"{path}: partial scores of another test (other checkpoint, list, "
                         "protocol or code); delete it or pass --restart")
    index = {v: i for i, v in enumerate(video_ids)}
    return {index[v]: (int(vs.labels[k]), vs.scores[k],
                       None if vs.full is None else vs.full[k])
            for k, v in enumerate(vs.video_ids)}


@torch.no_grad()
def evaluate(model: nn.Module, dataset, video_ids: Sequence[str], device: torch.device,
             protocol: Protocol, batch_snippets: int = 50, num_workers: int = 0,
             keep_full: bool = False, progress: bool = True, partial: str | Path | None = None,
             save_every_s: float = 60.0, precision: str = "fp32",
             split_over_ranks: bool = False) -> VideoScores | None:
    """Per-video averaged raw logits of `model` over `dataset` (one item per video).

    `dataset[i]` is `(views (frames*crops, L*C, H, W), label)`, frame-major crop-minor, as
    tsn.data.dataset.TSNTestDataset returns it; a dataset that also has `views(i, frames)`
    is read a forward batch at a time (memory). Views are run `batch_snippets` at a time.

    `partial`: a score file that holds the finished videos, rewritten (atomically) at most
    every `save_every_s` seconds and when the loop stops on an error; an existing one of the
    same test is resumed (its videos are not run again), one of another test is refused.
    The caller deletes it once the final scores are saved.

    `precision` (tsn.engine.precision): "fp32" is the release's float32 (the caller sets the
    process-wide float32 mode, see `run`); "bf16" runs the forward under autocast.

    `split_over_ranks` (in a process group, tsn.engine.distributed): this rank scores every
    world-th remaining video and keeps them in `<partial stem>.rank<r>.npz`; rank 0 returns
    the scores of every video, the other ranks None. Partial files of every rank (and of a
    one-process run) are resumed, whatever the number of ranks that wrote them.
    """
    if len(video_ids) != len(dataset):
        raise ValueError(f"{len(video_ids)} video ids for a dataset of {len(dataset)} videos")
    frames, crops = protocol.num_frames, protocol.num_crops
    model.eval()  # TEST phase: stored BN statistics, no dropout
    forward = snippet_forward(model)
    fingerprint = _fingerprint(video_ids, protocol, keep_full)
    rank, world = ((distributed.rank(), distributed.world_size()) if split_over_ranks
                   else (0, 1))
    partial = Path(partial) if partial is not None else None
    done: dict[int, tuple] = {}  # video index -> (label, scores (C,), full or None)
    for path in partial_files(partial) if partial is not None else []:
        done.update(_load_partial(path, video_ids, fingerprint))
        log.info("resuming from %s: %d of %d videos already scored", path, len(done),
                 len(video_ids))
    todo = [i for i in range(len(dataset)) if i not in done][rank::world]
    if world > 1:
        distributed.barrier()  # every rank has read the partial files before any rewrites one
        log.info("rank %d of %d: %d videos to score", rank, world, len(todo))
        partial = _rank_partial(partial, rank, world) if partial is not None else None
    bar = tqdm(total=len(done) + len(todo), initial=len(done),
               desc="test" if world == 1 else f"test (rank 0 of {world})",
               disable=not progress or rank != 0, unit="video")
    last_save, unsaved = time.monotonic(), 0
    try:
        context = autocast(precision, device)
        for i, label, logits in _video_logits(forward, dataset, todo, device, batch_snippets,
                                              crops, num_workers, context):
            if logits.shape[0] != frames * crops:
                raise ValueError(f"video {video_ids[i]}: dataset gave {logits.shape[0]} views, "
                                 f"protocol {protocol.label} needs {frames * crops}")
            full = logits.reshape(frames, crops, -1).numpy()  # frame-major, crop-minor
            done[i] = (label, aggregate(full, protocol.crop_agg), full if keep_full else None)
            unsaved += 1
            bar.update()
            if partial is not None and time.monotonic() - last_save >= save_every_s:
                _save_partial(partial, done, video_ids, protocol, fingerprint)
                last_save, unsaved = time.monotonic(), 0
    except BaseException:
        if partial is not None and unsaved:
            _save_partial(partial, done, video_ids, protocol, fingerprint)
        raise
    finally:
        bar.close()
    if world > 1:
        if partial is not None and unsaved:  # kept if a peer fails before the gather ends
            _save_partial(partial, done, video_ids, protocol, fingerprint)
        parts = distributed.gather_object({i: done[i] for i in todo})
        if parts is None:
            return None  # rank 0 holds the scores
        for part in parts:
            done.update(part)
    order = range(len(dataset))
    return VideoScores(tuple(video_ids), np.asarray([done[i][0] for i in order], np.int64),
                       np.stack([done[i][1] for i in order]), protocol,
                       np.stack([done[i][2] for i in order]) if keep_full else None)


def _deviation_note(exp, precision: str) -> str:
    """Score-file note: test precision and training clip mode when they are not the release's."""
    notes = [precision_note(precision), clip_mode_note(exp.solver.clip_mode)]
    return "; ".join(n for n in notes if n)


def test_run(run_dir: str | Path, list_file: str | Path, out: str | Path | None = None, *,
             root: str | None = None, checkpoint_path: str | Path | None = None,
             frames: int = 25, crops: int = 10, crop_agg: str = "mean",
             sampling: str = "eval_net", batch: int = 50, workers: int = 0,
             device: str = "auto", keep_full: bool = False, dataset: str = "", split: int = 0,
             precision: str = "fp32", save_every_s: float = 60.0, restart: bool = False,
             progress: bool = True) -> tuple[VideoScores | None, Path, object]:
    """`tsn test` as a function: test the run folder's newest (or given) checkpoint over
    `list_file`; the score file is written to `out` (default run_dir/scores.npz), its
    confusion matrix (`<out stem>.confusion.png`) and per-class accuracies
    (`<out stem>.per_class.csv`, with the file) beside it.

    Returns (scores, score file, the run's Experiment). An interrupted test resumes from
    `<out>.partial.npz` (and the ranks' `.partial.rank<r>.npz`) unless `restart`. Under
    mpirun / torchrun the ranks share the videos and rank 0 writes the files; the other ranks
    return None as scores.
    """
    out = Path(out or Path(run_dir) / "scores.npz")
    check_writable(out.parent)  # before any work: the scores, the partial file, the PNG
    info = distributed.detect()  # mpirun / torchrun: the ranks share the videos
    dev = select_device(device, info.local_rank)
    model, exp, ckpt = load_trained(run_dir, checkpoint_path, dev)
    with _process_group(info, dev, exp.dist_timeout_s):
        return _test_run(run_dir, list_file, out, dev, model, exp, ckpt, root=root,
                         frames=frames, crops=crops, crop_agg=crop_agg, sampling=sampling,
                         batch=batch, workers=workers, keep_full=keep_full, dataset=dataset,
                         split=split, precision=precision, save_every_s=save_every_s,
                         restart=restart, progress=progress)


@contextmanager
def _process_group(info, device: torch.device, timeout_s: float):
    """The process group of an mpirun / torchrun launch while a test runs (none in one
    process)."""
    if info.world_size == 1:
        yield
        return
    distributed.init(device, timeout_s)
    try:
        yield
    finally:
        distributed.shutdown()


def _test_run(run_dir, list_file, out: Path, dev, model, exp, ckpt, *, root, frames, crops,
              crop_agg, sampling, batch, workers, keep_full, dataset, split, precision,
              save_every_s, restart, progress) -> tuple[VideoScores | None, Path, object]:
    """test_run once the model is loaded (and, under a launcher, the process group formed)."""
    records = read_file_list(list_file, root=root)
    check_test_list(records, list_file, exp.model.num_classes, exp.model.modality)
    protocol = Protocol(modality=exp.model.modality, num_frames=frames, num_crops=crops,
                        crop_agg=crop_agg, frame_sampling=sampling, weights=str(ckpt),
                        dataset=dataset or exp.data.dataset, split=split, commit=git_commit(),
                        note=_deviation_note(exp, precision),
                        # the run record: training config, versions, hardware, seed
                        extra={"record": run_record(to_dict(exp), exp.seed),
                               "list": str(list_file), "precision": precision,
                               "clip_mode": exp.solver.clip_mode,
                               # the labels' names, for the per-class CSV and the figures
                               "classes": list(class_names(exp) or ())})
    test_set = build_test_dataset(records, exp.model.modality, protocol, exp.model.new_length)
    ids = [Path(r.path).name for r in records]
    partial = partial_path(out)
    if restart and distributed.rank() == 0:
        for path in partial_files(partial):
            path.unlink(missing_ok=True)
    distributed.barrier()  # ranks: --restart's deletions happen before anyone reads
    set_float32_mode(precision)
    vs = evaluate(model, test_set, ids, dev, protocol, batch, workers, keep_full,
                  progress=progress, partial=partial, save_every_s=save_every_s,
                  precision=precision, split_over_ranks=True)
    if vs is None:
        return None, out, exp  # another rank than 0: rank 0 writes the files
    try:
        save_scores(out, vs)
    except OSError as err:
        raise _scores_not_saved(out, partial, vs, protocol, keep_full, err) from None
    for path in partial_files(partial):
        path.unlink(missing_ok=True)  # the final file holds everything now
    cm = confusion_matrix(vs.labels, vs.scores.argmax(1), vs.num_classes)
    ci = scores_interval(vs.scores, vs.labels)
    write_confusion_png(out.with_suffix(".confusion.png"), cm,
                        f"{exp.model.modality} {protocol.label}: mean class accuracy "
                        f"{100 * mean_class_accuracy(vs.scores, vs.labels):.2f}% (95% CI "
                        f"{100 * ci.low:.2f}-{100 * ci.high:.2f})", class_names_of(vs))
    return vs, out, exp


def _scores_not_saved(out: Path, partial: Path, vs: VideoScores, protocol: Protocol,
                      keep_full: bool, err: OSError) -> OutputError:
    """The error for a score file that could not be written after the whole test ran: the
    scores go to the partial file (the resume point) when it can be written, so the rerun
    of the same command only writes the file."""
    fingerprint = _fingerprint(vs.video_ids, protocol, keep_full)
    try:
        save_scores(partial, dataclasses.replace(
            vs, protocol=dataclasses.replace(protocol, extra={"partial_of": fingerprint})))
        kept = (f"the scores of all {len(vs.video_ids)} videos are kept in {partial}: make "
                "room or fix the folder and rerun the same command (nothing is recomputed)")
    except OSError:
        kept = (f"the scores could not be kept in {partial} either; videos already saved "
                "there are skipped by a rerun")
    return OutputError(f"{write_error(out, err)}; {kept}", err.errno)
