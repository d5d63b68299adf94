# The README's two commands: `make demo` and `make test`. Both install first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
# The local CPU build of PyTorch, pinned exactly so that pip never pulls CUDA wheels.
TORCH_PIN ?= torch==2.13.0
STAMP  := $(VENV)/.installed
# Real MNIST for tests and the demo where the checkout sits beside shared/data and the user
# has set no AMRLEARN_DATA; elsewhere the data home stays the user's (~/amrlearn_data).
ifeq ($(origin AMRLEARN_DATA),undefined)
  ifneq ($(wildcard ../shared/data/.),)
    export AMRLEARN_DATA := $(abspath ../shared/data)
  endif
endif

.PHONY: install test demo lint docs bench clean fashion-mnist

install: $(STAMP)

$(STAMP): pyproject.toml setup.cfg
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q "$(TORCH_PIN)"
	$(PIP) install -q -e ".[dev]" "$(TORCH_PIN)"
	@if $(PIP) list 2>/dev/null | grep -qi '^nvidia-'; then \
	  echo "error: CUDA wheels (nvidia-*) were pulled into $(VENV)"; exit 1; fi
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

demo: install
	$(VENV)/bin/amrlearn demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The documentation site, built offline into docs/_build/html with warnings as errors.
# Its formulas render with a bundled MathJax 2.7: Debian's libjs-mathjax, installed here
# when missing (as root; otherwise the line to run is printed), or AMRLEARN_DOCS_MATHJAX_DIR.
MATHJAX_DIR ?= $(or $(AMRLEARN_DOCS_MATHJAX_DIR),/usr/share/javascript/mathjax)
docs: install
	@test -f "$(MATHJAX_DIR)/MathJax.js" || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq libjs-mathjax >/dev/null; \
	  else \
	    echo "error: MathJax 2.7 not found in $(MATHJAX_DIR): run"; \
	    echo "  sudo apt-get install libjs-mathjax"; \
	    echo "or set AMRLEARN_DOCS_MATHJAX_DIR to a MathJax 2.7 folder"; exit 1; \
	  fi; }
	$(PIP) install -q -e ".[docs]" "$(TORCH_PIN)"
	PYTHON=$(PY) AMRLEARN_DOCS_MATHJAX_DIR=$(MATHJAX_DIR) docs/build.sh

# Fashion-MNIST, optional: Debian's dataset-fashion-mnist, which load_fashion_mnist reads in
# place. Installed here when missing (as root; otherwise the line to run is printed). Without
# it `make test` still passes: the Fashion-MNIST tests that need the real files skip.
FASHION_MNIST_DIR := /usr/share/datasets/fashion-mnist
fashion-mnist:
	@test -f "$(FASHION_MNIST_DIR)/t10k-labels-idx1-ubyte.gz" || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	  else \
	    echo "error: Fashion-MNIST not found in $(FASHION_MNIST_DIR): run"; \
	    echo "  sudo apt-get install dataset-fashion-mnist"; exit 1; \
	  fi; }

# The pins of the `bench` extra of pyproject.toml, installed with --no-deps so that the
# benchmarks' peers cannot replace the CPU torch.
BENCH_REQS = $(PY) -c "import sys; \
	tomllib = __import__('tomllib') if sys.version_info >= (3, 11) else __import__('pip._vendor.tomli', fromlist=['x']); \
	print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['bench']))"

bench: install
	$(PIP) install -q --no-deps $$($(BENCH_REQS))
	for b in benchmarks/bench_*.py; do $(PY) $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache docs/_build docs/auto_examples docs/generated
