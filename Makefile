# Two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test install bench clean browser libllvm

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# pip resolves torch and torchvision together (torch 2.14.1 + torchvision 0.29.1 from local disk here).
	$(BIN)/pip install --quiet -e '.[test,studio,cluster]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/jewelsearch demo --if-missing
	$(BIN)/jewelsearch serve --host $(HOST) --port $(PORT)

# Browser tests drive Debian's chromium; install it when missing and we may (root),
# otherwise those tests skip with a reason.
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
		(apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)) \
		|| echo "could not install chromium; browser tests will be skipped"; fi

# The studio renders fastest with Mitsuba's LLVM variant; Debian's libLLVM 15 (which chromium
# pulls in) aborts it, 19 works. Install 19 when missing and we may (root); otherwise the
# studio probes what is there and falls back to its slower scalar variant.
libllvm:
	@if ! ls /usr/lib/*-linux-gnu/libLLVM*19* >/dev/null 2>&1 && [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
		(apt-get install -y -qq libllvm19 >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq libllvm19 >/dev/null)) \
		|| echo "could not install libllvm19; the studio will render with its scalar variant"; fi

test: $(STAMP) browser libllvm
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_encoder.py
	$(BIN)/python benchmarks/bench_index.py
	$(BIN)/python benchmarks/bench_api.py
	$(BIN)/python benchmarks/bench_recommend.py
	$(BIN)/python benchmarks/bench_events.py

clean:
	rm -rf $(VENV) jewelsearch-data
