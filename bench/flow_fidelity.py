"""How close each TV-L1 path lands to OpenCV 2.4 on the reference pairs -> results/bench/.

`python -m bench.flow_fidelity [--device cpu|cuda] [--out results/bench/flow_fidelity]` writes
`<out>_<device>.{json,md}`: per pair and path, the distance to the 2.4 CPU reference flow (mean
and p99 end-point error, encoded values identical / within +-1, bit identity), whether the
per-warp inner iteration counts equal the reference's, and for gpu24 the distance to
`flow_gpu_emulated.npy` (an estimate of dense_flow's GPU output, reported, never a gate).
Paths: the torch TV-L1 with cpu24 and gpu24 semantics, and OpenCV 5's CPU DualTVL1 at the
settings `tsn extract --tvl1-backend opencv` uses.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from bench.flow import golden_dir
from tsn import report
from tsn.flow.compare import FAITHFUL, flow_distance
from tsn.flow.compute import make_flow
from tsn.flow.tvl1 import tvl1_flow


def load_reference(folder: Path) -> tuple[list[dict], dict]:
    """The reference pairs with their flows, emulated GPU flows and iteration counts."""
    manifest = json.loads((folder / "manifest.json").read_text())
    pairs = []
    for pair in manifest["pairs"]:
        d = folder / pair["dir"]
        pairs.append({
            "name": pair["dir"],
            "prev": cv2.imread(str(d / "prev.png"), cv2.IMREAD_GRAYSCALE),
            "next": cv2.imread(str(d / "next.png"), cv2.IMREAD_GRAYSCALE),
            "flow": np.load(d / "flow.npy"),
            "emulated": np.load(d / "flow_gpu_emulated.npy"),
            "iterations": np.array(pair["inner_iterations_per_scale_warp"]),
        })
    return pairs, manifest


def measure(pairs: list[dict], device: str) -> dict:
    """Run every path on every pair; distances and iteration comparisons per pair."""
    prev = np.stack([p["prev"] for p in pairs])
    nxt = np.stack([p["next"] for p in pairs])
    rows, seconds = [], {}
    for semantics in ("cpu24", "gpu24"):
        start = time.perf_counter()
        flows, stats = tvl1_flow(prev, nxt, semantics=semantics, device=device,
                                 return_stats=True)
        seconds[f"torch {semantics}"] = time.perf_counter() - start
        for p, flow, counts in zip(pairs, flows, stats.iterations):
            d = flow_distance(flow, p["flow"])
            row = {"pair": p["name"], "path": f"torch {semantics}", **d.as_dict(),
                   "bit_identical": bool(np.array_equal(flow, p["flow"])),
                   "faithful": not FAITHFUL.failures(d),
                   "iterations_equal": bool(np.array_equal(counts, p["iterations"])),
                   "warps_with_equal_iterations": int((counts == p["iterations"]).sum()),
                   "warps": int(counts.size), "inner_iterations": int(counts.sum()),
                   "reference_inner_iterations": int(p["iterations"].sum())}
            if semantics == "gpu24":
                e = flow_distance(flow, p["emulated"])
                row["vs_emulated_mean_epe"] = e.mean_epe
                row["vs_emulated_identical"] = e.encoded_identical
                row["bit_identical_to_emulated"] = bool(np.array_equal(flow, p["emulated"]))
            rows.append(row)
    opencv = make_flow("tvl1")
    start = time.perf_counter()
    for p in pairs:
        d = flow_distance(opencv.calc(p["prev"], p["next"], None), p["flow"])
        rows.append({"pair": p["name"], "path": "opencv5", **d.as_dict(),
                     "faithful": not FAITHFUL.failures(d)})
    seconds["opencv5"] = time.perf_counter() - start
    return {"rows": rows, "seconds": seconds}


def markdown(result: dict) -> str:
    """The report as a markdown page."""
    lines = [
        "# TV-L1 fidelity to OpenCV 2.4 (reference pairs)", "",
        f"Device: {result['device']}. Faithful bounds per pair: mean EPE <= {FAITHFUL.mean_epe} "
        f"px, p99 EPE <= {FAITHFUL.p99_epe} px, encoded within +-1 >= "
        f"{FAITHFUL.encoded_within_1} %, identical >= {FAITHFUL.encoded_identical} %. "
        "gpu24 is compared with the 2.4 CPU reference (it is not meant to meet the bounds: the "
        "GPU class differs) and with flow_gpu_emulated.npy (an estimate, not a reference).", "",
        "| pair | path | mean EPE | p99 EPE | identical % | within +-1 % | bit-identical | "
        "faithful | iterations = reference | vs emulated: mean EPE / bit-identical |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        iters = (f"{r['warps_with_equal_iterations']}/{r['warps']} warps "
                 f"({r['inner_iterations']} vs {r['reference_inner_iterations']})"
                 if "warps" in r else "")
        emu = (f"{r['vs_emulated_mean_epe']:.4f} / {r['bit_identical_to_emulated']}"
               if "vs_emulated_mean_epe" in r else "")
        lines.append(f"| {r['pair']} | {r['path']} | {r['mean_epe']:.4f} | {r['p99_epe']:.4f} | "
                     f"{r['encoded_identical']:.2f} | {r['encoded_within_1']:.3f} | "
                     f"{r.get('bit_identical', '')} | {r['faithful']} | {iters} | {emu} |")
    lines += ["", "Speed is not measured here (results/bench/flow_<device>.md is the benchmark).",
              "", "Produced by `python -m bench.flow_fidelity` at commit "
              f"{result['record']['commit']}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Measure and write `<out>_<device>.{json,md}`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--out", default="results/bench/flow_fidelity")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print("--device cuda: no CUDA device here", file=sys.stderr)
            return 2
    folder = golden_dir()
    pairs, _ = load_reference(folder)
    result = {"device": args.device, **measure(pairs, args.device),
              "record": report.run_record(config={"device": args.device,
                                                  "pairs": [p["name"] for p in pairs]})}
    device = "cuda" if args.device.startswith("cuda") else "cpu"
    out = Path(f"{args.out}_{device}")
    out.parent.mkdir(parents=True, exist_ok=True)
    report.atomic_write_bytes(out.with_suffix(".json"),
                              json.dumps(result, indent=1, default=str).encode())
    report.atomic_write_bytes(out.with_suffix(".md"), markdown(result).encode())
    print(f"wrote {out}.json and {out}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
