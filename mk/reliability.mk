# Reliability: fault suite (SIGKILL + resume, disk full, read-only, dead rank). See docs/reliability.md.

.PHONY: test-faults

test-faults: ## fault suite: kills + resume, Ctrl-C / SIGTERM, disk full / read-only outputs, dead rank (root for tmpfs; ~8 min)
	$(PY) -m pytest -q -m faults tests/test_faults_*.py
