# Everything a fresh machine needs, from this file: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
EXTRAS ?= dev

.PHONY: demo test lint cluster cluster-stop cluster-status bench man

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[$(EXTRAS)]'
	@# an editable install has no data files: link the man pages where `git help` finds them
	mkdir -p $(VENV)/share/man/man1
	ln -sf $(abspath man)/*.1 $(VENV)/share/man/man1/
	touch $@

# The main job: a Hydra sweep on submitit_local whose jobs run a git snapshot.
demo: $(VENV)/.installed
	$(PY) examples/demo.py

# The whole test suite (SLURM tests need `make cluster` first; in CI they are required).
test: $(VENV)/.installed
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

# A real single-node SLURM cluster on this machine (root; installs Debian packages if missing).
cluster:
	bash tests/slurm/cluster.sh start

cluster-stop:
	bash tests/slurm/cluster.sh stop

cluster-status:
	bash tests/slurm/cluster.sh status

# man pages and shell completions, both generated from the commands' switches
man: $(VENV)/.installed
	$(PY) -m git_slurm.manpages --write

bench: $(VENV)/.installed
	$(PY) benchmarks/run.py
