# Training engine (tsn/engine): smoke run, engine tests, throughput benchmark. See docs/engine.md.

.PHONY: train-smoke test-engine test-engine-gpu test-extras bench-train

train-smoke: ## train the tiny model on synthetic clips for 100 iterations (CPU, ~1 min) into runs/smoke
	$(VENV)/bin/tsn train configs/smoke.toml

test-engine: ## engine tests: Caffe solver golden, schedules, configs, resume after SIGKILL, 2-rank mpirun
	$(PY) -m pytest -q tests/test_engine_*.py

test-engine-gpu: ## engine tests on CUDA (resume determinism, CPU == CUDA); needs a GPU
	$(PY) -m pytest -q -m gpu tests/test_engine_gpu.py

test-extras: ## install the optional extras into .venv (tensorboard; needs the network) and run their tests
	$(PY) -m pip install -q -e '.[tensorboard]'
	$(PY) -m pytest -q -m extras

bench-train: ## training throughput: engine vs bare PyTorch loop, optimizer step, interleaved (results/bench/train_<device>.json)
	$(PY) -m bench.train --arch bn_inception --batch 2 --iters 4 --rounds 3

BENCH_TARGETS += bench-train
