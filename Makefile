# `make setup` prepares everything once (quick when already done); `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
UI_SOURCES := $(shell find ui/src ui/index.html ui/vite.config.ts ui/tsconfig.json -type f 2>/dev/null)
# Debian's Chromium for the browser tests (only `make test` needs it): Playwright drives it and never
# downloads a browser.
CHROMIUM := /usr/bin/chromium

.PHONY: setup test bench bench-peers clean bubblewrap

setup: $(STAMP) node_modules/.installed bubblewrap ui/dist/index.html

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

ui/node_modules/.installed: ui/package.json ui/package-lock.json
	npm --prefix ui ci --no-audit --no-fund --loglevel=error
	touch $@

# The web UI the function app serves under /api/ui/ (built, not committed).
ui/dist/index.html: ui/node_modules/.installed $(UI_SOURCES)
	npm --prefix ui run build --silent

$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; \
	else \
	  echo "The browser tests need Debian's chromium: install it (sudo apt-get install chromium)." >&2; exit 1; \
	fi

test: setup $(CHROMIUM)
	npm --prefix ui test --silent
	$(PY) -m pytest

# The peers' virtualenvs (rlms, dspy) are kept under .rlm-state/ between runs.
PEER_VENVS := .rlm-state/bench-peers

bench: setup
	$(PY) -m bench.sandbox
	$(PY) -m bench.durable --quick
	$(PY) -m bench.prefix
	$(PY) -m bench.starts
	$(PY) -m bench.ui
	$(PY) -m bench.peers --quick --venvs $(PEER_VENVS)

bench-peers: setup
	$(PY) -m bench.peers --venvs $(PEER_VENVS) --json-out $(PEER_VENVS)/peers.json

clean:
	rm -rf $(VENV) node_modules ui/node_modules ui/dist test-artifacts .rlm-data .rlm-state
