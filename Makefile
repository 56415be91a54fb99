# Shortcuts. `make checkpoints` regenerates the committed default runs (see checkpoints/README.md).
PYTHON ?= .venv/bin/python
# the default runs and their recipes are defined once, in generators/default_runs.py
DEFAULT_RUNS := $(shell $(PYTHON) -m generators.default_runs names)

.PHONY: help checkpoints metrics report $(DEFAULT_RUNS) test test-default-runs

help:
	@echo "make checkpoints          train + evaluate all default runs into checkpoints/ (about 5 CPU minutes each)"
	@echo "make RUN                  only one of: $(DEFAULT_RUNS)"
	@echo "make metrics              re-evaluate the committed runs without retraining them"
	@echo "  (bash scripts/make_checkpoints.sh --dry-run [RUN ...] prints the commands they run)"
	@echo "make report               report.zip of the four runs the dashboard opens on (its Build the report zip)"
	@echo "make test                 the whole test suite"
	@echo "make test-default-runs    check that the committed runs load, sample and reproduce their metrics"

checkpoints:
	PYTHON=$(PYTHON) bash scripts/make_checkpoints.sh

metrics:
	PYTHON=$(PYTHON) bash scripts/make_checkpoints.sh --evaluate-only

# The runs the dashboard opens on (generators/default_runs.py SELECTED_AT_START: VAE, VAE β=4, AE, DCGAN), so the
# zip is the one its "Build the report zip" button makes on a fresh page (seed 0, 64 samples per grid).
report:
	$(PYTHON) -m evaluation report $$($(PYTHON) -c "from generators.default_runs import SELECTED_AT_START as r; \
		print(' '.join('checkpoints/' + n for n in r))") --out report.zip

$(DEFAULT_RUNS):
	PYTHON=$(PYTHON) bash scripts/make_checkpoints.sh $@

test:
	bash scripts/test.sh

test-default-runs:
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/test_default_runs.py
