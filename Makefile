# Two commands on a fresh clone: `make demo` and `make test`.
VENV    := .venv
PY      := $(VENV)/bin/python
PIP     := $(VENV)/bin/pip
CLI     := $(VENV)/bin/newsdesk
STAMP   := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: install demo test lint serve bench bench-scale soak chaos clean

$(PY):
	python3 -m venv $(VENV)

# torch first and pinned: 2.13.0 is the CPU wheel on this machine's disk; letting a
# dependency resolve torch on its own pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev,bench]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# System packages pip cannot install (redis-server for the Redis registry's tests, chromium
# for the reader pages' browser tests); one line and on, never a failure, where it cannot
# install them (not root, no apt).
install: $(STAMP)
	@bash scripts/system-deps.sh

# Ends with the URL of the briefing's reader page (saved under data/briefings/).
demo: install
	$(CLI) ingest seeds/
	$(CLI) brief --topic "the fighting in the Kursk region" --save
	@echo "Run 'make serve' and open that URL to read the briefing with clickable citations."

# Lint first: CI runs exactly this target, so style drift fails CI like a failing test.
test: lint
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

serve: install
	$(CLI) serve

bench: install
	$(PY) -m bench.run_all

# Not part of bench: synthetic 10k and 100k chunks on a Chroma server take 10+ minutes
# (python -m bench.scale --sizes 10000 100000 1000000 for 1M).
bench-scale: install
	$(PY) -m bench.scale
	$(PY) -m bench.workers

# Not part of bench: 5,000 requests at 32 clients take several minutes.
soak: install
	$(PY) -m bench.soak

# Concurrent writers with SIGKILLs at larger counts than the tests (bench/chaos.py).
chaos: install
	$(PY) -m bench.chaos

clean:
	rm -rf data .pytest_cache .hypothesis
