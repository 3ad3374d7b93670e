"""The synthetic dataset for `make demo` and the smoke runs: generate, then extract frames; and
what its reports teach: each stream against the ceiling the synthetic design allows.

Generates the UCF101-format videos and split files (tsn.data.synth, what `tsn synth` runs) and
extracts dense_flow-layout frames and flow with `tsn extract` (the flow area's command-line
interface) once; a `READY` marker records the sizes, so a finished dataset is reused and an
interrupted one is regenerated.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reproduce.profiles import Profile
from tsn import report
from tsn.cli import main as tsn
from tsn.data.synth import (
    APPEARANCE,
    CLASSES,
    MOTION,
    PAIRS,
    SynthConfig,
    ceiling,
    generate,
    stream_groups,
)
from tsn.metrics import confusion_matrix, per_class_accuracy
from tsn.scores import load_scores

log = logging.getLogger(__name__)


def ensure_synthetic(base: Path, profile: Profile) -> Path:
    """Make `base/ucfTrainTestlist` and `base/frames` for the profile's sizes unless there."""
    want = {"train_per_class": profile.synth_train_per_class,
            "test_per_class": profile.synth_test_per_class, "frames": profile.synth_frames,
            "flow": profile.flow}
    marker = base / "READY"
    if marker.is_file() and json.loads(marker.read_text()) == want:
        log.info("reusing synthetic dataset %s", base)
        return base
    if base.exists():
        log.info("regenerating %s (sizes differ or it was interrupted)", base)
        shutil.rmtree(base)
    generate(SynthConfig(str(base), train_per_class=want["train_per_class"],
                         test_per_class=want["test_per_class"], num_frames=want["frames"]))
    args = ["extract", "--src", str(base / "UCF-101"), "--out", str(base / "frames"),
            "--flow", profile.flow, "--workers", "2"]
    if tsn(args) != 0:
        raise RuntimeError(f"`tsn {' '.join(args)}` failed while building {base}")
    report.atomic_write_bytes(marker, json.dumps(want).encode())
    return base


# ---------------------------------------------------------------- what the demo teaches

STREAM_NAMES = {"rgb": "RGB (spatial stream)", "flow": "optical flow (temporal stream)",
                "warped_flow": "warped flow", "rgb+flow": "RGB + flow (fused)"}
CHANCE = 100 / len(CLASSES)


def _streams(row: dict) -> list[str]:
    return [m for m in str(row.get("streams", "")).split("+") if m]


def ceiling_of(row: dict) -> float | None:
    """The ceiling (%) the synthetic design allows the streams of a report row, or None."""
    value = ceiling(_streams(row))
    return None if value is None else 100 * value


def _name(row: dict) -> str:
    key = str(row.get("streams", ""))
    return STREAM_NAMES.get(key, key.replace("+", " + "))


def _per_class(row: dict) -> np.ndarray | None:
    """Per-class accuracy (%) of the row's own score file (the first it lists), or None."""
    try:
        vs = load_scores(str(row.get("scores", "")).split()[0])
    except (IndexError, OSError, ValueError):
        return None
    if vs.num_classes != len(CLASSES):
        return None
    return 100 * per_class_accuracy(confusion_matrix(vs.labels, vs.scores.argmax(1),
                                                     vs.num_classes))


def _per_pair(row: dict) -> list[tuple[str, float, float]] | None:
    """Per pair of the design: (cue, reached %, allowed %), each the mean of the pair's two
    classes; inside a pair a blind stream's split is arbitrary (100 and 0 as well as 50 and
    50), only the pair's mean says whether it can tell the two apart."""
    acc = _per_class(row)
    if acc is None:
        return None
    allows = _design_allows(_streams(row))
    index = {c: i for i, c in enumerate(CLASSES)}
    return [(cue, (acc[index[a]] + acc[index[b]]) / 2, (allows[a] + allows[b]) / 2)
            for a, b, cue in PAIRS]


def _design_allows(modalities: list[str]) -> dict[str, float]:
    """Per class, the accuracy the design allows on average: 100 for a class the streams tell
    from every other, 100/g inside a group of g look-alikes (the group's mean, whatever rule)."""
    groups = stream_groups(modalities) or {}
    return {c: 100 / len(groups[c]) for c in groups}


def design_section() -> str:
    """Markdown: what each stream sees of each pair, whether it can tell the pair apart, and
    the ceilings that follow, all from tsn.data.synth's design tables (not from any result)."""
    rgb, flow, both = (stream_groups(m) for m in (["rgb"], ["flow"], ["rgb", "flow"]))
    lines = ["## What the synthetic design allows", "",
             "Each pair of classes differs by one cue (tsn/data/synth.py). A stream can tell "
             "the two apart only if it sees that cue: RGB sees one frame (the scene's colour, "
             "the objects), optical flow sees motion in grey levels (no colour, no shape); "
             "TSN's average consensus scores every snippet alone, so neither sees the order of "
             "events (and TSN's training flips frames left-right, so the design's motions are "
             "up and down: left and right would look alike to every stream).", "",
             "| pair | the cue | one RGB frame shows | RGB tells them apart | flow shows | flow "
             "tells them apart | RGB + flow |", "|---|---|---|---|---|---|---|"]
    def tells(groups, a, b):
        return "yes" if b not in groups[a] else "no"

    def shows(table, a, b):
        return table[a] if table[a] == table[b] else f"{table[a]} / {table[b]}"

    for a, b, cue in PAIRS:
        lines.append(f"| {a} / {b} | {cue} | {shows(APPEARANCE, a, b)} | {tells(rgb, a, b)} | "
                     f"{shows(MOTION, a, b)} | {tells(flow, a, b)} | {tells(both, a, b)} |")
    lines += ["", "Ceilings (mean class accuracy the design allows, in expectation): "
              + ", ".join(f"{STREAM_NAMES[k]} {100 * ceiling(m):.2f}%" for k, m in
                          (("rgb", ["rgb"]), ("flow", ["flow"]), ("rgb+flow", ["rgb", "flow"])))
              + f"; chance {CHANCE:.2f}%. A stream that sees g classes alike gets them right "
              "1/g of the time on average over those classes, whatever rule it learns; mean "
              "class accuracy averages over the 8 classes. A ceiling holds in expectation: on 8 "
              "test videos per class a pair the stream cannot tell apart lands a few points "
              "above or below its 50. So RGB knows every pair by its scene "
              "but inside a pair only red from green, flow knows up from down (with or without "
              "a pan) but not red from green, and no stream with average consensus tells "
              "CircleThenSquare from SquareThenCircle (what Table 3's consensus functions are "
              "about)."]
    return "\n".join(lines)


def reached_section(rows: Sequence[dict]) -> str:
    """Markdown: each row's number with its interval against its ceiling, the fused number
    against both streams, and per class what was reached next to what the design allows."""
    lines = ["## Reached vs ceiling", ""]
    rated = [r for r in rows if ceiling_of(r) is not None]
    for r in rated:
        top = ceiling_of(r)
        gap = float(r["value"]) - top
        lines.append(f"- {_name(r)}: {float(r['value']):.2f}% (95% CI {float(r['ci_low']):.2f}"
                     f"-{float(r['ci_high']):.2f}) of a {top:.2f}% ceiling: "
                     f"{abs(gap):.2f} points {'below' if gap <= 0 else 'above'} it"
                     f"{'' if abs(gap) <= 10 else ' (more than 10 points away)'}.")
    singles = [r for r in rated if "+" not in str(r.get("streams"))]
    for r in (r for r in rated if "+" in str(r.get("streams"))):
        if singles:
            best = max(float(s["value"]) for s in singles)
            verdict = "beats" if float(r["value"]) > best else "does NOT beat"
            others = ", ".join(f"{float(x['value']):.2f}%" for x in singles)
            lines.append(f"- The fusion {verdict} both streams ({float(r['value']):.2f}% vs "
                         f"{others}).")
    per_pair = {_name(r): _per_pair(r) for r in rated}
    if per_pair and all(v is not None for v in per_pair.values()):
        names = list(per_pair)
        lines += ["", "Per pair, the mean of its two classes, reached % / allowed % (100: the "
                  "stream can tell the two apart; 50: it cannot, so inside the pair it is "
                  "chance, however the 50 splits between the two classes):", "",
                  "| pair | the cue | " + " | ".join(names) + " |",
                  "|---|---|" + "---|" * len(names)]
        for k, (a, b, cue) in enumerate(PAIRS):
            cells = [f"{v[k][1]:.1f} / {v[k][2]:.0f}" for v in per_pair.values()]
            lines.append(f"| {a} / {b} | {cue} | " + " | ".join(cells) + " |")
    per_class = {_name(r): (_per_class(r), _design_allows(_streams(r))) for r in rated}
    if per_class and all(v[0] is not None for v in per_class.values()):
        names = list(per_class)
        lines += ["", "Per class, reached % (what the design allows on average in "
                  "parentheses):", "",
                  "| class | the pair's cue | " + " | ".join(names) + " |",
                  "|---|---|" + "---|" * len(names)]
        cue = {c: p[2] for p in PAIRS for c in p[:2]}
        for i, c in enumerate(CLASSES):
            cells = [f"{acc[i]:.0f} ({allows[c]:.0f})" for acc, allows in per_class.values()]
            lines.append(f"| {c} | {cue[c]} | " + " | ".join(cells) + " |")
    lines += ["", "What this shows: the spatial stream recognises what a scene looks like (its "
              "colour: the pair, and red vs green), the temporal stream how things move (up vs "
              "down, a pan, sideways, standing still), and fusing their raw scores (1 : 1.5, "
              "tsn/fusion.py) combines both, because where a stream is blind its scores for the "
              "look-alike classes are about equal and the other stream decides. No stream, nor "
              "their fusion, uses the order of events with average consensus."]
    return "\n".join(lines)


def report_sections(rows: Sequence[dict]) -> list[str]:
    """The synthetic report's own sections: the design and its ceilings, and what was reached."""
    return [design_section(), reached_section(rows)]


def write_ceiling_figure(path: str | Path, rows: Sequence[dict], name: str) -> Path:
    """Bars per stream (with 95% intervals) against the ceilings the design allows, beside a
    per-class table of reached vs allowed accuracy; the figure says it is synthetic data."""
    import matplotlib

    matplotlib.use("Agg")  # headless
    import matplotlib.pyplot as plt

    rated = [r for r in rows if ceiling_of(r) is not None] or list(rows)
    fig, (ax, grid) = plt.subplots(1, 2, figsize=(13.5, 5.6),
                                   gridspec_kw={"width_ratios": (1.0, 1.25)})
    x = np.arange(len(rated))
    values = np.array([float(r["value"]) for r in rated])
    lows = np.array([float(r.get("ci_low") if r.get("ci_low") not in (None, "")
                           else r["value"]) for r in rated])
    highs = np.array([float(r.get("ci_high") if r.get("ci_high") not in (None, "")
                            else r["value"]) for r in rated])
    ax.bar(x, values, 0.6, color=["tab:red", "tab:blue", "tab:purple", "tab:gray"][:len(x)],
           alpha=0.8, label="reached (error bar: 95% interval of the test set)")
    ax.errorbar(x, values, yerr=[values - lows, highs - values], fmt="none", ecolor="black",
                capsize=4, lw=1)
    for xi, r in zip(x, rated):
        top = ceiling_of(r)
        if top is not None:
            ax.hlines(top, xi - 0.38, xi + 0.38, colors="black", linestyles="--", lw=2,
                      label="ceiling the design allows" if xi == 0 else None)
            ax.text(xi + 0.4, top, f"ceiling {top:.1f}", va="center", fontsize=8)
        ax.text(xi, 2, f"{float(r['value']):.1f}", ha="center", color="white", fontsize=10,
                fontweight="bold")
    ax.axhline(CHANCE, color="gray", lw=1, ls=":", label=f"chance ({CHANCE:.1f})")
    ax.set_xticks(x, [_name(r).replace(" (", "\n(") for r in rated], fontsize=8)
    ax.set_ylim(0, 110)
    ax.set_ylabel("mean class accuracy (%)")
    ax.set_title("each stream against its ceiling", fontsize=10)
    ax.legend(loc="upper left", fontsize=7)
    pairs = [(_name(r), _per_pair(r)) for r in rated if ceiling_of(r) is not None]
    pairs = [p for p in pairs if p[1] is not None]
    if pairs:
        reached = np.array([[q[1] for q in p[1]] for p in pairs]).T  # pairs x streams
        grid.imshow(reached, cmap="RdYlGn", vmin=0, vmax=100, aspect="auto")
        for j, (_, per_pair) in enumerate(pairs):
            for i, (_, got, allowed) in enumerate(per_pair):
                grid.text(j, i, f"{got:.0f}  /  {allowed:.0f}", ha="center", va="center",
                          fontsize=11, fontweight="bold" if allowed == 100 else "normal")
        grid.set_yticks(range(len(PAIRS)), [f"{a} /\n{b}\n({cue})" for a, b, cue in PAIRS],
                        fontsize=8)
        grid.set_xticks(range(len(pairs)), [p[0].replace(" (", "\n(") for p in pairs],
                        fontsize=8)
        grid.set_title("per pair, mean of its two classes: reached / allowed (100: the stream "
                       "can tell\nthe two apart, 50: it cannot, chance inside the pair)",
                       fontsize=9)
    else:
        grid.axis("off")
    fig.suptitle(f"{name}: SYNTHETIC DATA (tsn synth, 8 classes), not comparable to the paper; "
                 "ceilings come from the synthetic design", fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return report.atomic_write_bytes(path, buf.getvalue())
