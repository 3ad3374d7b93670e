# Released weights (tsn/weights, weights/manifest.toml): fetch + convert, evaluation. See docs/weights.md.

.PHONY: weights weights-init eval-reference test-weights

WEIGHTS ?= all

weights: ## download (resumable, mirrors, SHA-256 lock) + convert released TSN weights to .pt (WEIGHTS=all|init|reference|NAME)
	$(VENV)/bin/tsn weights fetch $(WEIGHTS)

weights-init: ## only the two ImageNet init caffemodels (rgb, flow) -> weights/bn_inception_{rgb,flow}_init.pt
	$(VENV)/bin/tsn weights fetch init

eval-reference: ## test the converted reference models 25x10 on data/ -> results/reference_models.{csv,md} (expected vs measured)
	$(VENV)/bin/tsn weights eval-reference --data-root $(or $(DATA_ROOT),data) --out-dir results

test-weights: ## weights tests: manifest, local-HTTP fetch (resume, mirrors, checksum), imports, eval-reference
	$(PY) -m pytest -q tests/test_weights_*.py
