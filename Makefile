# Shortcuts. `make checkpoints` regenerates the committed default runs (see checkpoints/README.md).
PYTHON ?= .venv/bin/python
DEFAULT_RUNS := vae-mnist5k vae-beta4-mnist5k ae-mnist5k dcgan-mnist5k cvae-mnist5k cdcgan-mnist5k

.PHONY: help checkpoints metrics $(DEFAULT_RUNS) test test-default-runs

help:
	@echo "make checkpoints          train + evaluate all default runs into checkpoints/ (about 5 CPU minutes each)"
	@echo "make RUN                  only one of: $(DEFAULT_RUNS)"
	@echo "make metrics              re-evaluate the committed runs without retraining them"
	@echo "make test                 the whole test suite"
	@echo "make test-default-runs    check that the committed runs load, sample and reproduce their metrics"

checkpoints:
	PYTHON=$(PYTHON) bash scripts/make_checkpoints.sh

metrics:
	PYTHON=$(PYTHON) bash scripts/make_checkpoints.sh --evaluate-only

$(DEFAULT_RUNS):
	PYTHON=$(PYTHON) bash scripts/make_checkpoints.sh $@

test:
	bash scripts/test.sh

test-default-runs:
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/test_default_runs.py
