"""Benchmarks run by `make bench-*`; each writes results/bench/<name>.{json,md,png}.

`bench.flow`: TV-L1 pairs/s, the torch path (tsn/flow/tvl1.py) against OpenCV 5's CPU TV-L1.
`bench.flow_cost`: the README's extraction cost table, computed from bench.flow's JSON.
"""
