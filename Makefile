# The two commands of the README: `make train` and `make test`. Each installs what it needs first.
PYTHON ?= python
# The CPU build of torch first: a bare `torch` requirement would pull several GB of CUDA packages
TORCH ?= torch==2.13.0
ENV ?= LunarLander-v2
TIMESTEPS ?= 1000000
SEED ?= 0

.PHONY: install-torch install install-tests install-docs train test docs lint type

install-torch:
	$(PYTHON) -m pip install --quiet "$(TORCH)"

install: install-torch
	$(PYTHON) -m pip install --quiet -e ".[extra]"

install-tests: install-torch
	$(PYTHON) -m pip install --quiet -e ".[tests,zoo,docs]"

train: install
	$(PYTHON) -m sb3_ppg --env $(ENV) --timesteps $(TIMESTEPS) --seed $(SEED)

test: install-tests
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy sb3_ppg
	$(PYTHON) -m pytest tests

lint:
	$(PYTHON) -m ruff check .

type:
	$(PYTHON) -m mypy sb3_ppg

install-docs: install-torch
	$(PYTHON) -m pip install --quiet -e ".[docs]"

docs: install-docs
	$(PYTHON) -m sphinx -W -b html docs docs/_build/html
