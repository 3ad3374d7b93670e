# Models area (tsn/models): backbones, TSN wrapper, partial BN, cross-modality init.

.PHONY: test-models bench-models bench-models-gpu

test-models: ## model tests only (consensus, TSN wrapper, partial BN, init, backbones)
	$(PY) -m pytest -q tests/test_models_consensus.py tests/test_models_tsn.py \
	  tests/test_models_partial_bn.py tests/test_models_init.py tests/test_models_backbones.py

bench-models: ## params, MACs and CPU speed of every backbone -> results/bench/models_cpu.csv
	$(PY) -m bench.models --device cpu --out results/bench/models_cpu.csv

bench-models-gpu: ## the same on CUDA -> results/bench/models_cuda.csv
	$(PY) -m bench.models --device cuda --eval-batch 32 --train-videos 8 --repeats 10 \
	  --out results/bench/models_cuda.csv

BENCH_TARGETS += bench-models
