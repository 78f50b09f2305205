# `make setup` prepares everything once (quick when already done); `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test bench bench-peers clean bubblewrap

setup: $(STAMP) node_modules/.installed bubblewrap

# The local sandbox runs generated code under bubblewrap: installed here as root with apt (CI), else asked for.
bubblewrap:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; \
	  else \
	    echo "The local sandbox needs bubblewrap: install it (Debian/Ubuntu: sudo apt-get install bubblewrap)." >&2; exit 1; \
	  fi; }

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

test: setup
	$(PY) -m pytest

# The peers' virtualenvs (rlms, dspy) are kept under .rlm-state/ between runs.
PEER_VENVS := .rlm-state/bench-peers

bench: setup
	$(PY) -m bench.sandbox
	$(PY) -m bench.durable --quick
	$(PY) -m bench.prefix
	$(PY) -m bench.starts
	$(PY) -m bench.peers --quick --venvs $(PEER_VENVS)

bench-peers: setup
	$(PY) -m bench.peers --venvs $(PEER_VENVS) --json-out $(PEER_VENVS)/peers.json

clean:
	rm -rf $(VENV) node_modules .rlm-data .rlm-state
