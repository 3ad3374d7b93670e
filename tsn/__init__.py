"""Temporal Segment Networks (Wang et al., ECCV 2016), reproduced faithfully to the Caffe release.

The core package: data, models, engine, testing, fusion and reports. It never imports
`reproduce/` (the per-table scripts) and has no side effects on import.
"""

__version__ = "0.1.0"
