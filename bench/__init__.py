"""Benchmarks run by `make bench-*`; each writes results/bench/<name>.{json,md,png}.

`bench.flow`: TV-L1 pairs/s, the torch path (tsn/flow/tvl1.py) against OpenCV 5's CPU TV-L1.
`bench.flow_cost`: the README's extraction cost table, computed from bench.flow's JSON.
`bench.train`: engine iterations and CaffeSGD steps against a bare PyTorch loop (make bench-train).
`bench.models`: parameters, MACs and speed of every backbone (make bench-models).
`bench.amp`: BN-Inception train step in float32 vs TF32 / bf16 / fp16 (make bench-amp-gpu).
`bench.data`: training samples/s of TSNDataset vs a naive PIL pipeline (make bench-data).
`bench.rounds`: the sides of a comparison take turns (A, B / B, A ...), load recorded per block.

The library packages (tsn, prototxt_port) hold no benchmark; benchmarks import them.
"""
