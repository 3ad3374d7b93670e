"""`make bench-flow`: TV-L1 pairs/s of the torch path against OpenCV 5's CPU TV-L1.

Sides, on the same 340x256 grey frames (the 8 pairs of the shared tvl1_golden set, repeated to
fill a batch):

* `opencv5`: `cv2.optflow.DualTVL1OpticalFlow` at the settings `tsn extract --tvl1-backend
  opencv` uses (tsn/flow/compute.py), one pair per call, on the CPU;
* `torch <semantics> b<B>`: `tsn.flow.tvl1.tvl1_flow` on B pairs per call (B = 1, 8, 32; on
  CUDA also 128), on --device, for each --semantics (gpu24 on the CPU; gpu24 and cpu24 on CUDA);
  `... compiled`: the same with the inner iteration through torch.compile (`tsn extract`'s
  default), compiled during the untimed warm-up.

Threads: by default one for every side (`--threads 1`): pairs/s per core, which is how
`tsn extract` runs on the CPU (one one-thread process per core) and what the cost table
multiplies. With more threads the torch sides run with OMP_WAIT_POLICY=PASSIVE (set here before
torch loads, unless the environment sets it): spinning OpenMP threads waste most of the CPU at
every one of the iteration's small operations as soon as another job shares the cores.

A block holds the same pairs for every side (default 8: each golden pair once, since TV-L1's
cost depends on the motion; 64 on CUDA), as calls of the side's batch (at least one call).

The sides run interleaved in one process (bench.rounds.interleave): each round runs one block
of every side, in an order rotated by one each round, so a change in machine load hits every
side alike. Every
block records the load average before and after it (os.getloadavg), and the run records the
thread counts (torch and OpenCV use the same --threads on the same cores), CUDA peak memory
per pair (torch.cuda.max_memory_allocated / B), the mean end-point error of each side's flow
against the 2.4 CPU reference flow (a sanity check, not a faithfulness test: gpu24 differs
from it by design), and the run record (commit, versions, hardware: tsn.report.run_record).

Rounds (3) stop early once --budget-s (300 s) is spent; one round always runs, which on a
2-core CPU can take ~10 min while the torch path is far slower than OpenCV there. Writes
`<out-dir>/flow_<device type>.{json,md,png}` atomically.

    python -m bench.flow --device cpu              # make bench-flow
    python -m bench.flow --device cuda             # on a GPU machine
    python -m bench.flow --quick --out-dir /tmp/b  # tiny frames, seconds (tests)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from bench.rounds import interleave
from tsn.atomic import atomic_write_bytes, atomic_write_text

REPO = Path(__file__).resolve().parents[1]
OPENCV_SIDE = "opencv5"


@dataclass(frozen=True)
class BenchConfig:
    """What to time."""

    device: str = "cpu"
    batches: tuple[int, ...] = (1, 8, 32)
    semantics: tuple[str, ...] = ("gpu24",)
    compiled: tuple[bool, ...] = (False, True)  # torch sides eager and/or torch.compile'd
    rounds: int = 3
    block_pairs: int = 8  # pairs per block (at least one call of the side's batch)
    budget_s: float = 300.0  # no new round starts after this many seconds
    size: tuple[int, int] | None = None  # (width, height) to resize the pairs to; None = as stored
    threads: int = 1  # torch and OpenCV threads; 1 = per-core numbers
    quick: bool = False


@dataclass(frozen=True)
class Side:
    """One timed configuration."""

    name: str
    kind: str  # "opencv" | "torch"
    batch: int = 1
    semantics: str | None = None
    compiled: bool = False


def golden_dir() -> Path:
    """The shared TV-L1 reference pairs: $TSN_SHARED/tvl1_golden, else ../shared beside the repo."""
    root = Path(os.environ.get("TSN_SHARED", REPO.parent / "shared"))
    path = root / "tvl1_golden"
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: TV-L1 golden pairs not found; set TSN_SHARED to the "
                                "shared folder that holds tvl1_golden/")
    return path


def load_pairs(folder: Path, size: tuple[int, int] | None = None) -> list[dict]:
    """[{name, prev, next, ref}] from `<pair>/{prev,next}.png, flow.npy` (ref None if resized)."""
    pairs = []
    for d in sorted(p for p in folder.iterdir() if (p / "prev.png").is_file()):
        prev = cv2.imread(str(d / "prev.png"), cv2.IMREAD_GRAYSCALE)
        nxt = cv2.imread(str(d / "next.png"), cv2.IMREAD_GRAYSCALE)
        if prev is None or nxt is None:
            raise ValueError(f"{d}: prev.png/next.png unreadable")
        ref = np.load(d / "flow.npy") if (d / "flow.npy").is_file() and size is None else None
        if size is not None:
            prev = cv2.resize(prev, size, interpolation=cv2.INTER_AREA)
            nxt = cv2.resize(nxt, size, interpolation=cv2.INTER_AREA)
        pairs.append({"name": d.name, "prev": prev, "next": nxt, "ref": ref})
    if not pairs:
        raise FileNotFoundError(f"{folder}: no <pair>/prev.png, next.png")
    return pairs


def sides(cfg: BenchConfig) -> list[Side]:
    """OpenCV first, then the torch path per semantics and batch."""
    out = [Side(OPENCV_SIDE, "opencv")]
    for sem in cfg.semantics:
        for comp in cfg.compiled:
            out += [Side(f"torch {sem} b{b}" + (" compiled" if comp else ""), "torch", b, sem,
                         comp) for b in cfg.batches]
    return out


def _cuda(device: str) -> bool:
    return str(device).startswith("cuda")


def _block_calls(side: Side, cfg: BenchConfig) -> int:
    """Calls per block: enough of the side's batch to cover block_pairs, at least one."""
    return max(1, -(-cfg.block_pairs // side.batch))


def _stack(pairs: list[dict], start: int, n: int) -> tuple[list[int], np.ndarray, np.ndarray]:
    """n pairs from position `start` of the repeated pair list: (indices, prevs, nexts)."""
    idx = [(start + i) % len(pairs) for i in range(n)]
    return (idx, np.stack([pairs[i]["prev"] for i in idx]),
            np.stack([pairs[i]["next"] for i in idx]))


def _block_pairs(side: Side, cfg: BenchConfig) -> int:
    """Pairs in one block of `side`: block_pairs for OpenCV, whole batches for torch."""
    return cfg.block_pairs if side.kind == "opencv" else _block_calls(side, cfg) * side.batch


def run_block(side: Side, pairs: list[dict], cfg: BenchConfig, opencv_flow) -> tuple[dict, list]:
    """Time one block of `side`; returns (its fields for the block record: seconds, pairs/s,
    process CPU seconds, peak CUDA memory per pair; [(pair index, flow)] of its pairs). The
    load around it is recorded by bench.rounds.interleave."""
    import torch

    from tsn.flow.compute import compute_flow
    from tsn.flow.tvl1 import tvl1_flow

    cuda = _cuda(cfg.device) and side.kind == "torch"
    if cuda:
        torch.cuda.synchronize(cfg.device)
        torch.cuda.reset_peak_memory_stats(cfg.device)
    cpu0, t0 = time.process_time(), time.perf_counter()
    flows = []
    if side.kind == "opencv":
        for i in range(cfg.block_pairs):
            k = i % len(pairs)
            flows.append((k, compute_flow(opencv_flow, pairs[k]["prev"], pairs[k]["next"])))
    else:
        for c in range(_block_calls(side, cfg)):
            idx, prevs, nexts = _stack(pairs, c * side.batch, side.batch)
            out = tvl1_flow(prevs, nexts, semantics=side.semantics, device=cfg.device,
                            compile=side.compiled)
            flows += list(zip(idx, out, strict=True))  # numpy result: the device has finished
    seconds = time.perf_counter() - t0
    cpu_s = time.process_time() - cpu0
    record = {"kind": side.kind, "batch": side.batch, "semantics": side.semantics,
              "compiled": side.compiled, "pairs": len(flows), "seconds": round(seconds, 4),
              "pairs_per_s": len(flows) / seconds, "process_cpu_s": round(cpu_s, 3)}
    if cuda:
        peak = torch.cuda.max_memory_allocated(cfg.device)
        record["peak_mib_per_pair"] = peak / side.batch / 2**20
    return record, flows


def _epe(flows: list, pairs: list[dict]) -> float | None:
    """Mean end-point error (px) against the 2.4 CPU reference flow.npy, over `flows`."""
    errs = [float(np.linalg.norm(f - pairs[k]["ref"], axis=-1).mean())
            for k, f in flows if pairs[k]["ref"] is not None]
    return float(np.mean(errs)) if errs else None


def summarise(blocks: list[dict], all_sides: list[Side], epe: dict) -> list[dict]:
    """One row per side: median / min / max pairs/s over its blocks, speed-up vs OpenCV."""
    rows = []
    for side in all_sides:
        rates = [b["pairs_per_s"] for b in blocks if b["side"] == side.name]
        if not rates:
            continue
        row = {"side": side.name, "kind": side.kind, "batch": side.batch,
               "semantics": side.semantics or "", "compiled": side.compiled,
               "blocks": len(rates),
               "pairs_per_s": float(np.median(rates)), "min_pairs_per_s": min(rates),
               "max_pairs_per_s": max(rates), "s_per_pair": 1.0 / float(np.median(rates)),
               # CPU seconds of this process (all its threads) per pair: core-seconds per pair
               "cpu_s_per_pair": float(np.median([b["process_cpu_s"] / b["pairs"] for b in blocks
                                                  if b["side"] == side.name])),
               "mean_epe_vs_cpu24_ref": epe.get(side.name)}
        peaks = [b["peak_mib_per_pair"] for b in blocks
                 if b["side"] == side.name and "peak_mib_per_pair" in b]
        row["peak_mib_per_pair"] = max(peaks) if peaks else None
        rows.append(row)
    base = next((r["pairs_per_s"] for r in rows if r["side"] == OPENCV_SIDE), None)
    for r in rows:
        r["x_opencv5"] = r["pairs_per_s"] / base if base else None
    return rows


def run(cfg: BenchConfig, progress: bool = True) -> dict:
    """Warm up every side, then interleave the blocks round by round; the result dict."""
    import torch

    from tsn.flow.compute import make_flow
    from tsn.flow.tvl1 import tvl1_flow
    from tsn.report import run_record

    if _cuda(cfg.device) and not torch.cuda.is_available():
        raise RuntimeError(f"--device {cfg.device}: no CUDA device visible "
                           "(torch.cuda.is_available() is False); use --device cpu")
    torch.set_num_threads(cfg.threads)
    cv2.setNumThreads(cfg.threads)
    folder = golden_dir()
    pairs = load_pairs(folder, cfg.size)
    opencv_flow = make_flow("tvl1")
    all_sides = sides(cfg)
    for side in all_sides:  # warm-up, untimed: allocators, CUDA context, kernels, compiling
        if side.kind == "torch" and (side.batch == 1 or side.compiled or _cuda(cfg.device)):
            _i, prevs, nexts = _stack(pairs, 0, side.batch)
            tvl1_flow(prevs, nexts, semantics=side.semantics, device=cfg.device,
                      compile=side.compiled)
    epe, started = {}, time.perf_counter()

    def timed(side: Side):
        def one_block(_round: int) -> dict:
            fields, flows = run_block(side, pairs, cfg, opencv_flow)
            epe.setdefault(side.name, _epe(flows, pairs))
            return fields
        return one_block

    def show(block: dict) -> None:
        print(f"round {block['round']} {block['side']:>16}: {block['pairs_per_s']:8.3f} pairs/s "
              f"({block['pairs']} pairs, {block['seconds']:.1f} s, load "
              f"{block['load_before'][0]:.2f} -> {block['load_after'][0]:.2f})",
              file=sys.stderr, flush=True)

    # the sides take turns, rotated each round, the load recorded around every block
    blocks = interleave({side.name: timed(side) for side in all_sides}, cfg.rounds,
                        units={side.name: _block_pairs(side, cfg) for side in all_sides},
                        warmup=False, budget_s=cfg.budget_s, on_block=show if progress else None)
    frame = pairs[0]["prev"].shape
    config = {**asdict(cfg), "pairs_from": "tvl1_golden (8 pairs, repeated)",
              "frame_size": [int(frame[1]), int(frame[0])],
              "opencv_settings": "tsn.flow.compute.OpenCVTVL1Params() (tsn extract "
                                 "--tvl1-backend opencv)"}
    record = run_record(config)
    record["versions"]["opencv"] = cv2.__version__
    threads = {"torch_threads": torch.get_num_threads(), "opencv_threads": cv2.getNumThreads(),
               "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
               "affinity": sorted(os.sched_getaffinity(0)), "cpu_count": os.cpu_count()}
    if _cuda(cfg.device):
        threads["cuda_device"] = torch.cuda.get_device_name(torch.device(cfg.device))
    return {"benchmark": "flow", "device": cfg.device, "record": record, "threads": threads,
            "rounds_run": 1 + max(b["round"] for b in blocks),
            "wall_s": round(time.perf_counter() - started, 1),
            "summary": summarise(blocks, all_sides, epe), "blocks": blocks}


SUMMARY_COLUMNS = ("side", "batch", "semantics", "pairs_per_s", "min_pairs_per_s",
                   "max_pairs_per_s", "s_per_pair", "cpu_s_per_pair", "x_opencv5",
                   "peak_mib_per_pair",
                   "mean_epe_vs_cpu24_ref", "blocks")
BLOCK_COLUMNS = ("round", "side", "pairs", "seconds", "pairs_per_s", "load_before", "load_after")


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    if isinstance(v, list):
        return " / ".join(f"{x:.2f}" for x in v)
    return str(v).replace("|", "/")


def _table(rows: list[dict], columns) -> list[str]:
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
    return out


def markdown(result: dict, png_name: str) -> str:
    """The report: what was timed, the per-side summary, every block with its load."""
    rec, cfg, th = result["record"], result["record"]["config"], result["threads"]
    w, h = cfg["frame_size"]
    lines = [f"# TV-L1 throughput: torch path vs OpenCV 5 ({result['device']})", "",
             f"{w}x{h} grey pairs ({cfg['pairs_from']}); {result['rounds_run']} interleaved "
             f"round(s) of blocks of {cfg['block_pairs']} pairs (a batch-B side: at least one "
             f"call of B); {result['wall_s']} s wall. Threads: torch {th['torch_threads']}, "
             f"OpenCV {th['opencv_threads']}, on cores {th['affinity']}. OpenCV side: "
             f"{cfg['opencv_settings']}, CPU."
             + (" (quick mode: tiny frames, not a measurement)" if cfg["quick"] else ""), "",
             "pairs/s = median over blocks (min, max beside it); cpu_s_per_pair = this "
             "process's CPU time per pair (all threads; the host's share only on CUDA); "
             "x_opencv5 = ratio of medians; "
             "mean_epe_vs_cpu24_ref = px against the 2.4 CPU reference flow (gpu24 differs "
             "from it by design).", ""]
    lines += _table(result["summary"], SUMMARY_COLUMNS)
    lines += ["", f"![pairs/s]({png_name})", "", "## Blocks (load average 1/5/15 min)", ""]
    lines += _table(result["blocks"], BLOCK_COLUMNS)
    lines += ["", "## Run record", "", f"- commit: {rec['commit']}",
              f"- versions: {rec['versions']}", f"- hardware: {rec['hardware']}",
              f"- date: {rec['date']}", f"- config: {json.dumps(cfg)}", ""]
    return "\n".join(lines)


def bar_chart(result: dict) -> bytes:
    """PNG: median pairs/s per side, min-max whiskers, log scale."""
    import matplotlib

    matplotlib.use("Agg")  # headless
    import matplotlib.pyplot as plt

    rows = result["summary"]
    x = np.arange(len(rows))
    med = np.array([r["pairs_per_s"] for r in rows])
    err = np.array([[m - r["min_pairs_per_s"], r["max_pairs_per_s"] - m]
                    for m, r in zip(med, rows, strict=True)]).T
    colors = ["tab:gray" if r["kind"] == "opencv" else "tab:blue" for r in rows]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(rows)), 4.0))
    ax.bar(x, med, 0.6, yerr=err, capsize=4, color=colors)
    for xi, m in zip(x, med, strict=True):
        ax.annotate(f"{m:.3g}", (xi, m), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [r["side"] for r in rows], rotation=20, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("frame pairs / s (median, min-max)")
    w, h = result["record"]["config"]["frame_size"]
    ax.set_title(f"TV-L1 at {w}x{h} on {result['device']}: torch path vs OpenCV 5 CPU",
                 fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def write(result: dict, out_dir: Path) -> Path:
    """`<out_dir>/flow_<device type>.{json,md,png}`, atomically; returns the JSON path."""
    stem = Path(out_dir) / f"flow_{'cuda' if _cuda(result['device']) else 'cpu'}"
    atomic_write_bytes(stem.with_suffix(".png"), bar_chart(result))
    atomic_write_text(stem.with_suffix(".md"), markdown(result, stem.with_suffix(".png").name))
    atomic_write_text(stem.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    return stem.with_suffix(".json")


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """BenchConfig for the parsed arguments (--quick: tiny frames, 1 round, batches 1 and 2)."""
    semantics = tuple(s for s in args.semantics.split(",") if s) or (
        ("gpu24", "cpu24") if _cuda(args.device) else ("gpu24",))
    if args.quick:
        return BenchConfig(args.device, (1, 2), semantics, (False,), rounds=1, block_pairs=2,
                           size=(64, 48), threads=args.threads or 1, quick=True)
    cuda = _cuda(args.device)  # a GPU call of 8 pairs is too short to time alone
    batches = tuple(int(b) for b in (args.batches or ("1,8,32,128" if cuda else "1,8,32"))
                    .split(","))
    compiled = tuple(c == "compiled" for c in args.modes.split(",") if c)
    return BenchConfig(args.device, batches, semantics, compiled, args.rounds,
                       args.block_pairs or (64 if cuda else 8), args.budget_s,
                       threads=args.threads or 1)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its report."""
    parser = argparse.ArgumentParser(prog="python -m bench.flow", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--device", default="cpu", help="torch side: cpu | cuda | cuda:<i>")
    parser.add_argument("--batches", default="",
                        help="torch pairs per call (default 1,8,32; on CUDA also 128)")
    parser.add_argument("--semantics", default="",
                        help="comma list of gpu24, cpu24 (default: gpu24 on the CPU, both on "
                             "CUDA)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--block-pairs", type=int, default=0,
                        help="pairs per block (default 8 = the golden set once; 64 on CUDA)")
    parser.add_argument("--budget-s", type=float, default=300.0,
                        help="no new round after this many seconds (one round always runs)")
    parser.add_argument("--modes", default="eager,compiled",
                        help="torch sides: eager and/or compiled (torch.compile)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch and OpenCV threads (default 1: numbers per core)")
    parser.add_argument("--quick", action="store_true", help="tiny frames, one short round")
    parser.add_argument("--out-dir", default="results/bench")
    args = parser.parse_args(argv)
    # before torch loads: OpenMP threads that sleep between operations (see the module doc)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        result = run(config_from_args(args))
    except (RuntimeError, FileNotFoundError, ValueError) as err:
        print(f"bench.flow: {err}", file=sys.stderr)
        return 2
    path = write(result, Path(args.out_dir))
    print(f"wrote {path} and its .md/.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
