# The two commands of the README: `make train` and `make test`. Each installs what it needs first.
PYTHON ?= python
# The CPU build of torch first: a bare `torch` requirement would pull several GB of CUDA packages
TORCH ?= torch==2.13.0
ENV ?= LunarLander-v2
TIMESTEPS ?= 1000000
SEED ?= 0

.PHONY: install-torch install install-system install-tests install-docs train test docs lint type

install-torch:
	$(PYTHON) -m pip install --quiet "$(TORCH)"

install: install-torch
	$(PYTHON) -m pip install --quiet -e ".[extra]"

# System packages some tests need: Qt5 for EnvPool's Procgen, a PostgreSQL server for the distributed search.
# Installed with apt-get when missing and apt-get is there (CI runs as root on Debian); elsewhere those tests skip.
SYSTEM_PACKAGES ?= libqt5gui5 postgresql

install-system:
	@missing=""; for package in $(SYSTEM_PACKAGES); do \
		dpkg -s $$package >/dev/null 2>&1 || missing="$$missing $$package"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	else echo "make: system packages missing:$$missing (install them with apt-get; their tests skip)"; fi

install-tests: install-torch install-system
	$(PYTHON) -m pip install --quiet -e ".[tests,zoo,docs,procgen,distributed,minatar]"

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
