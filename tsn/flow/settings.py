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
settings leaves it as it is, and a rerun with different settings is refused (SettingsMismatch,
naming the differing keys), on every rank, before any video: one root never mixes methods or
sizes. `tsn extract --force` replaces the record after deleting the finished folders of the
run's videos, which are then redone (tsn/flow/extract.py; docs/data.md).
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
from tsn.flow.batched import ExtractError

log = logging.getLogger(__name__)

SETTINGS_FILE = "extract_settings.json"
RECORD_FORMAT = 1
MAX_KEYS = 4  # differing keys named in the refusal (the count says how many more)


class SettingsMismatch(ExtractError):
    """The output root was made with other settings; nothing was extracted."""


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
                "compile": bool(getattr(cfg, "compile", False)),
                "allow_short": bool(getattr(cfg, "allow_short", False))})
    return rec


def differences(old: dict, new: dict) -> list[str]:
    """The keys whose values differ, as `key old -> new` (`key differs` for nested values)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        plain = not isinstance(a, (dict, list)) and not isinstance(b, (dict, list))
        out.append(f"{key} {a!r} -> {b!r}" if plain else f"{key} differs")
    return out


def check_settings(out_root: str | Path, cfg) -> list[str]:
    """What differs between the root's record and `cfg` (`differences`); [] when the root has
    no record or an equal one. An unreadable record counts as different."""
    path = Path(out_root) / SETTINGS_FILE
    if not path.is_file():
        return []
    try:
        old = json.loads(path.read_text(encoding="utf-8"))["settings"]
        if not isinstance(old, dict):
            raise ValueError("no settings table")
    except (OSError, ValueError, KeyError, TypeError) as err:
        return [f"the record is unreadable ({err})"]
    return differences(old, flow_settings(cfg))


def mismatch_error(out_root: str | Path, diffs: list[str], finished: int) -> SettingsMismatch:
    """The refusal: the differing keys, and the two ways on."""
    more = len(diffs) - MAX_KEYS
    shown = "; ".join(diffs[:MAX_KEYS]) + (f"; and {more} more" if more > 0 else "")
    return SettingsMismatch(
        f"{Path(out_root) / SETTINGS_FILE}: this folder was made with other settings "
        f"(recorded -> now: {shown}); nothing was extracted. Extract into another --out, or "
        f"pass --force to delete the {finished} finished video folder(s) of these videos and "
        "redo them with the new settings")


def record_settings(out_root: str | Path, cfg, workers: int = 1, world: int = 1,
                    replace: bool = False) -> dict:
    """Write `<out_root>/extract_settings.json` unless an equal one is there (or `replace`,
    after `--force` removed the outputs of the old settings); returns the record. Call
    `check_settings` first: a different record is not overwritten here without `replace`."""
    path = Path(out_root) / SETTINGS_FILE
    settings = flow_settings(cfg)
    if path.is_file() and not replace:
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ExtractError(f"{path}: unreadable record ({err})") from None
        if old.get("settings") == settings:
            return old
        raise mismatch_error(out_root, differences(old.get("settings") or {}, settings), 0)
    record = {"record": "tsn extract settings", "format": RECORD_FORMAT, "settings": settings,
              "provenance": provenance(cfg, workers, world)}
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def read_settings(out_root: str | Path) -> dict | None:
    """The record of an output root, or None when it has none."""
    path = Path(out_root) / SETTINGS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
