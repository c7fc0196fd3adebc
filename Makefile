# One command each, on a fresh machine (Python 3.11+):
#   make train   sets up .venv and trains the recap design (data: $GAN_CIFAR10_DIR or TFDS)
#   make test    sets up .venv and runs the tests
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
WORKDIR ?= runs/recap

.PHONY: setup train smoke test bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

train: setup
	$(PY) train.py --config configs/recap.py --workdir $(WORKDIR)

smoke: setup
	$(PY) train.py --config configs/recap.py:smoke --workdir $$(mktemp -d)

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) -m gan.bench --config configs/baseline.py --config configs/recap.py
