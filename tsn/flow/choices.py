"""The names `tsn extract` offers, in a module that loads neither torch nor OpenCV.

`tsn extract --help` builds its parser from these (docs/architecture.md, the lazy CLI); the
modules that implement them (compute.py, extract.py, tvl1.py) import them from here.
"""

METHODS = ("tvl1", "dis", "dis_fast")  # --flow (besides "none")
BACKENDS = ("torch", "opencv")  # --tvl1-backend: OpenCV 2.4's TV-L1 in PyTorch | OpenCV 5's
SEMANTICS = ("gpu24", "cpu24")  # --tvl1-semantics (tsn/flow/tvl1.py); gpu24 is dense_flow's
FAILURE_LOG = "extract_failures.log"  # one line per failed video, in the output root
