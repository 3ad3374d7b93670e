"""`<out>/extract_settings.json`: which flow method, backend and settings made an output root.

The record has two parts:

* `settings`: everything that decides the bytes of the extracted files (flow method, TV-L1
  backend and semantics with every algorithm parameter, frame size, bound, layout, JPEG
  quality, warped-flow options). Two runs whose `settings` are equal (`==` on the parsed JSON)
  write the same kind of output; this is the part to compare before mixing outputs in a root.
* `provenance`: what ran (git commit, library versions, hardware, device, batch, workers,
  ranks, date): informative, it does not change the method (a device can change the last float
  bits of the torch TV-L1, tsn/flow/tvl1.py).

The first run into a root writes the record (atomically, tsn/atomic.py); a rerun with equal
settings leaves it as it is, and a rerun with different settings is warned about (the outputs
of the two runs are then mixed in one root).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
from pathlib import Path

import cv2
import numpy as np

from tsn.atomic import atomic_write_text

log = logging.getLogger(__name__)

SETTINGS_FILE = "extract_settings.json"
RECORD_FORMAT = 1


def flow_settings(cfg) -> dict:
    """The output-deciding settings of an ExtractConfig (JSON-ready, comparable with ==)."""
    from tsn.flow.batched import JPEG_QUALITY

    if cfg.flow == "tvl1" and cfg.tvl1_backend == "torch":
        from tsn.flow.tvl1 import TVL1Params

        algo = {"backend": "torch", "implementation": "tsn.flow.tvl1 (OpenCV 2.4 Dual TV-L1)",
                "semantics": cfg.tvl1_semantics,
                "params": dataclasses.asdict(cfg.tvl1_params or TVL1Params())}
    elif cfg.flow == "tvl1":
        algo = {"backend": "opencv", "implementation": "cv2.optflow.DualTVL1OpticalFlow",
                "semantics": None, "params": dataclasses.asdict(cfg.opencv_tvl1)}
    elif cfg.flow in ("dis", "dis_fast"):
        preset = "MEDIUM" if cfg.flow == "dis" else "FAST"
        algo = {"backend": "opencv", "implementation": "cv2.DISOpticalFlow", "semantics": None,
                "params": {"preset": preset}}
    else:
        algo = {"backend": None, "implementation": None, "semantics": None, "params": None}
    return {
        "flow": cfg.flow, **algo,
        "warp": cfg.warp,
        "warp_options": dataclasses.asdict(cfg.warp_options) if cfg.warp else None,
        # warped flow is at native size whatever --width/--height say (dense_warp_flow_gpu.cpp)
        "width": 0 if cfg.warp else cfg.width, "height": 0 if cfg.warp else cfg.height,
        "resize": "cv2.INTER_LINEAR", "gray": "cv2.COLOR_BGR2GRAY",
        "bound": float(cfg.bound), "jpeg_quality": JPEG_QUALITY, "level": cfg.level,
        "first_image": "img_00001.jpg = second decoded frame (dense_flow)",
    }


def provenance(cfg, workers: int, world: int) -> dict:
    """What ran: commit, versions, hardware, device, batch, processes, date (tsn.report)."""
    from tsn.report import run_record

    rec = run_record()
    rec.pop("config", None)
    rec.pop("seed", None)
    rec["versions"].update({"opencv": cv2.__version__, "numpy": np.__version__,
                            "platform": platform.platform()})
    rec.update({"device": cfg.device if cfg.flow == "tvl1" and cfg.tvl1_backend == "torch"
                else "cpu", "batch": cfg.batch if cfg.flow == "tvl1" else 1,
                "workers": workers, "ranks": world,
                "compile": bool(getattr(cfg, "compile", False))})
    return rec


def record_settings(out_root: str | Path, cfg, workers: int = 1, world: int = 1) -> dict:
    """Write `<out_root>/extract_settings.json` unless an equal one is there; returns it.

    A record with different settings is kept and a warning names the differing keys.
    """
    path = Path(out_root) / SETTINGS_FILE
    settings = flow_settings(cfg)
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            log.warning("%s unreadable (%s): writing it again", path, err)
        else:
            if old.get("settings") == settings:
                return old
            keys = sorted(k for k in set(settings) | set(old.get("settings") or {})
                          if settings.get(k) != (old.get("settings") or {}).get(k))
            log.warning("%s was made with other settings (%s differ): this run's outputs will "
                        "be mixed with the earlier ones in one folder", path, ", ".join(keys))
            return old
    record = {"record": "tsn extract settings", "format": RECORD_FORMAT, "settings": settings,
              "provenance": provenance(cfg, workers, world)}
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def read_settings(out_root: str | Path) -> dict | None:
    """The record of an output root, or None when it has none."""
    path = Path(out_root) / SETTINGS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
