# The README's two commands: `make demo` and `make test`. Both install first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
# The local CPU build of PyTorch, pinned exactly so that pip never pulls CUDA wheels.
TORCH_PIN ?= torch==2.13.0
STAMP  := $(VENV)/.installed
# Real MNIST for tests and the demo, where the checkout sits beside shared/.
export AMRLEARN_DATA ?= $(abspath ../shared/data)

.PHONY: install test demo lint bench clean

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

bench: install
	$(PIP) install -q --no-deps torchattacks==3.5.1 adversarial-robustness-toolbox==1.20.1 six
	for b in benchmarks/bench_*.py; do $(PY) $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
