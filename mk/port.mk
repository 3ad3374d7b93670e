# prototxt_port and BN-Inception targets.
.PHONY: test-port test-port-gpu bench-amp-gpu

test-port: ## prototxt_port tests (Caffe golden parity, conversion, bad input, fuzz)
	$(PY) -m pytest -q tests/test_port_golden.py tests/test_port_convert.py tests/test_port_errors.py tests/test_port_fuzz.py

test-port-gpu: ## prototxt_port on CUDA: Caffe parity and CPU == CUDA backward; needs a GPU
	$(PY) -m pytest -q -m gpu tests/test_port_gpu.py

bench-amp-gpu: ## BN-Inception TSN train step, fp32 vs AMP (bf16/fp16) -> results/bench/amp_cuda.json; needs a GPU
	$(PY) -m bench.amp --out results/bench/amp_cuda.json
