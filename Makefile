# Every target creates .venv on first use, so a fresh clone needs only `make demo` or `make test`.
# `make demo` installs the package and its core dependencies; the other targets add the dev extra (tests, lint,
# every optional backend). TORCH_INDEX=URL installs torch and torchvision from that index first, e.g. the CPU-only
# wheels: make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu (PyPI's Linux torch brings CUDA libraries).
PYTHON      ?= python3
VENV        ?= .venv
TORCH_INDEX ?=
BIN         := $(VENV)/bin
CORE        := $(VENV)/.installed-core
STAMP       := $(VENV)/.installed

.PHONY: setup test test-slow lint format demo clean

$(CORE): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install --quiet torch torchvision --index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e .
	touch $(CORE)

$(STAMP): $(CORE)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# The default test suite (slow tests excluded). pytest's exit 5 ("no tests collected") is a failure here.
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests"; exit 1; fi; exit $$rc

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

demo: $(CORE)
	$(BIN)/nirnet demo --out out/demo

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
