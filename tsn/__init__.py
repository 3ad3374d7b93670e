"""Temporal Segment Networks (Wang et al., ECCV 2016), reproduced faithfully to the Caffe release.

The core package: data, models, engine, testing, fusion and reports. It never imports
`reproduce/` (the per-table scripts) and has no side effects on import.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """`tsn.predict(video, rgb=..., flow=...)` (tsn/prediction.py) loaded on first use, so that
    `import tsn` stays light (no torch, no OpenCV)."""
    if name == "predict":
        from tsn.prediction import predict

        return predict
    raise AttributeError(f"module 'tsn' has no attribute {name!r}")
