# Paper tables: train what is missing, test, fuse, write results/<target>[-<data>-<profile>].{md,csv,png}.
# DATA= synthetic | ucf101 | hmdb51; PROFILE= full | demo | tiny (default: full, tiny on synthetic);
# ROWS= comma-separated row names; INIT_WEIGHTS='bn_inception=PATH ...' (full profile);
# SCHEDULE= released | paper (full profile); PRECISION= fp32 (release) | tf32 | bf16;
# CLIP_MODE= release (default: clip the iter_size-averaged gradient, as the release's 4 GPUs)
#   | caffe_iter_size (Caffe's literal rule: clip the iter_size sum);
# DATA_ROOT= folder with <data>/splits, frames;
# LAUNCH='mpirun -np 4' trains on several GPUs (default: one process, iter_size keeps batch 128).
DATA ?= ucf101
PROFILE ?=
ROWS ?=
SCHEDULE ?=
PRECISION ?=
CLIP_MODE ?=
INIT_WEIGHTS ?=
DATA_ROOT ?= data
RESULTS ?= results
LAUNCH ?=
REPRO_ARGS = --data $(DATA) --data-root $(DATA_ROOT) --out $(RESULTS) \
  $(if $(PROFILE),--profile $(PROFILE)) $(if $(ROWS),--rows "$(ROWS)") \
  $(if $(SCHEDULE),--schedule $(SCHEDULE)) $(if $(PRECISION),--precision $(PRECISION)) \
  $(if $(CLIP_MODE),--set solver.clip_mode=$(CLIP_MODE)) $(foreach w,$(INIT_WEIGHTS),--init-weights $(w)) \
  $(if $(LAUNCH),--launcher "$(LAUNCH)")

.PHONY: table1 table2 table3 table4 table5 table6 fusion demo paper-csv

table1: ## Table 1 (training strategies) on DATA= [PROFILE= ROWS= INIT_WEIGHTS=]
	$(PY) -m reproduce table1 $(REPRO_ARGS)

table2: ## Table 2 (input modalities) on DATA= [PROFILE= ROWS= INIT_WEIGHTS=]
	$(PY) -m reproduce table2 $(REPRO_ARGS)

table3: ## Table 3 (consensus functions) on DATA= [PROFILE= ROWS= INIT_WEIGHTS=]
	$(PY) -m reproduce table3 $(REPRO_ARGS)

table4: ## Table 4 (backbones) on DATA= [PROFILE= ROWS= INIT_WEIGHTS=]
	$(PY) -m reproduce table4 $(REPRO_ARGS)

table5: ## Table 5 (components; reuses Table 1/4 runs) on DATA= [PROFILE= INIT_WEIGHTS=]
	$(PY) -m reproduce table5 $(REPRO_ARGS)

table6: ## Table 6 (2/3 modalities, mean of 3 splits) on DATA=ucf101|hmdb51
	$(PY) -m reproduce table6 $(REPRO_ARGS)

fusion: ## RGB+flow (1:1.5) and +warped flow (1:1:0.5) fusion on DATA=
	$(PY) -m reproduce fusion $(REPRO_ARGS)

demo: ## synthetic data, small CPU profile: generate, extract, train RGB+flow, test, fuse, report
	$(PY) -m reproduce fusion --data synthetic --profile demo --data-root $(DATA_ROOT) \
	  --out $(RESULTS) --name demo

paper-csv: ## regenerate results/paper.csv from the shared paper_tables.csv
	$(PY) -m reproduce.paper

.PHONY: test-reproduce test-evaluate-gpu
test-reproduce: ## metrics, fusion, reports, tsn test (1 and 2 ranks), tsn predict and reproduce tests only
	$(PY) -m pytest -q tests/test_metrics.py tests/test_fusion.py tests/test_report.py \
	  tests/test_evaluate.py tests/test_evaluate_distributed.py tests/test_predict.py \
	  tests/test_reproduce.py

test-evaluate-gpu: ## tsn test on CUDA gives the CPU's scores (BN-Inception, 5x10); needs a GPU
	$(PY) -m pytest -q -m gpu tests/test_evaluate_gpu.py -s
