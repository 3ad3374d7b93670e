# Data area (tsn/data, tsn/flow, tsn/download.py): datasets, extraction, lists. See docs/data.md.

.PHONY: data-ucf101 data-hmdb51 data-synth test-data bench-data bench-flow bench-flow-fidelity flow-gpu-check device-pack flow-cost

DATA_DIR ?= data
SYNTH_DIR ?= $(DATA_DIR)/synth
FLOW ?= tvl1
WORKERS ?= 2
FLOW_DEVICE ?= cpu

data-ucf101: ## download (resumable) + unpack UCF101 and its splits into data/ucf101 (URLs: UCF101_URL, UCF101_SPLITS_URL)
	$(PY) -m tsn.data.prepare ucf101 --root $(DATA_DIR)/ucf101

data-hmdb51: ## download (resumable) + unpack HMDB51 and its splits into data/hmdb51 (URLs: HMDB51_URL, HMDB51_SPLITS_URL)
	$(PY) -m tsn.data.prepare hmdb51 --root $(DATA_DIR)/hmdb51

data-synth: ## synthetic UCF101-format set -> frames + flow (FLOW=tvl1|dis) -> file lists in data/synth
	$(VENV)/bin/tsn synth --out $(SYNTH_DIR)
	$(VENV)/bin/tsn extract --src $(SYNTH_DIR)/UCF-101 --out $(SYNTH_DIR)/frames --flow $(FLOW) --workers $(WORKERS)
	$(VENV)/bin/tsn lists --dataset synth --splits-dir $(SYNTH_DIR)/ucfTrainTestlist \
	  --frames $(SYNTH_DIR)/frames --out $(SYNTH_DIR)/lists --split 1

test-data: ## data + extraction tests only
	$(PY) -m pytest -q tests/test_data_*.py tests/test_flow_*.py

bench-data: ## training-sample throughput (RGB, flow) vs a naive PIL pipeline -> results/bench/data_throughput.{json,md,png}
	$(PY) -m bench.data --out results/bench/data_throughput

BENCH_TARGETS += bench-data

bench-flow: ## TV-L1 pairs/s: torch path (batch 1/8/32) vs OpenCV 5 CPU, interleaved (FLOW_DEVICE=cpu|cuda) -> results/bench/flow_<device>.{json,md,png}, then make flow-cost
	$(PY) -m bench.flow --device $(FLOW_DEVICE) --out-dir results/bench
	$(PY) -m bench.flow_cost --bench-dir results/bench --readme README.md

bench-flow-fidelity: ## TV-L1 fidelity to OpenCV 2.4 on the reference pairs (torch cpu24/gpu24, OpenCV 5) -> results/bench/flow_fidelity_<device>.{json,md}
	$(PY) -m bench.flow_fidelity --device $(FLOW_DEVICE)

flow-gpu-check: ## on a GPU machine: TV-L1 CUDA = CPU tests, fidelity and throughput on CUDA -> results/bench/flow_{fidelity_,}cuda.*, README cost table
	$(PY) -m pytest -q -m gpu tests/test_flow_tvl1.py tests/test_flow_pipeline.py
	$(PY) -m bench.flow_fidelity --device cuda
	$(PY) -m bench.flow --device cuda --out-dir results/bench --budget-s 240
	$(PY) -m bench.flow_cost --bench-dir results/bench --readme README.md

# What flow-gpu-check reads from the shared facts folder, copied into the git-ignored .device/
# so that it travels to a lent GPU machine (which gets the checkout only; docs/flow.md).
TSN_SHARED ?= ../shared
device-pack: ## copy the TV-L1 reference pairs (and tsn_caffe) into .device/shared for a lent GPU machine (docs/flow.md)
	rm -rf .device/shared && mkdir -p .device/shared/caffe_golden
	cp -r $(TSN_SHARED)/tvl1_golden $(TSN_SHARED)/tsn_caffe .device/shared/
	@echo "carry .device; on the machine: TSN_SHARED=\$$PWD/.device/shared PYTHONPATH=\$$PWD make flow-gpu-check PY=python3"

flow-cost: ## README's UCF101/HMDB51 extraction cost table from results/bench/flow_*.json
	$(PY) -m bench.flow_cost --bench-dir results/bench --readme README.md

BENCH_TARGETS += bench-flow bench-flow-fidelity
