"""Named choices of a run, importable without torch: configs and command lines check them early.

The behaviour behind each name lives with the code that implements it: float precisions in
tsn/engine/precision.py, gradient-clip rules in tsn/engine/optim.py (CaffeSGD).
"""

# "fp32" = the release's IEEE float32; "tf32" and "bf16" are faster, named deviations
PRECISIONS = ("fp32", "tf32", "bf16")
# which gradient meets clip_gradients when iter_size > 1: "release" = averaged over ranks and
# iter_size (the release's 4 GPUs x iter_size 1), "caffe_iter_size" = solver.cpp's literal sum
CLIP_MODES = ("release", "caffe_iter_size")
