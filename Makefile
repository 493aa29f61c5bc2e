# make check: lint, types, unit, integration, fault and fuzz suites, then the figures of the run.
# Every tool comes from the dev virtualenv (.venv); see README for how to create it.

VENV    := .venv/bin
PYTHON  := $(VENV)/python
FIGURES ?= .pytest_cache/check-figures.jsonl
# Each suite appends what became of its events (and escape attempts) to $(FIGURES).
PYTEST  := DISPATCHER_FIGURES=$(abspath $(FIGURES)) PYTHONPATH=scripts$${PYTHONPATH:+:$$PYTHONPATH} \
           $(VENV)/pytest -p dispatcher_figures
STACK   := python3 tests/integration/stack/pacifica_stack.py
# The property-based (Hypothesis and schemathesis) tests form the fuzz suite.
FUZZ_TESTS := $(shell grep -lE '^(from|import) (hypothesis|schemathesis)' tests/test_*.py)
NOT_SLOW   := -m "not integration and not fault"

.PHONY: check lint types unit integration fault fuzz escapes figures stack-down

check:
	@rm -f $(FIGURES); failed=""; \
	for step in lint types unit integration fault fuzz; do \
	    echo "=== $$step"; \
	    $(MAKE) --no-print-directory $$step FIGURES=$(FIGURES) || failed="$$failed $$step"; \
	done; \
	echo; $(PYTHON) scripts/summary.py $(FIGURES) || failed="$$failed figures"; \
	if [ -n "$$failed" ]; then echo "make check FAILED:$$failed"; exit 1; fi; \
	echo "make check passed"

lint:
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .

types:
	$(VENV)/mypy

unit:
	$(PYTEST) tests $(NOT_SLOW) $(addprefix --ignore=,$(FUZZ_TESTS))

# Needs the real Pacifica services: started here if they are not running, stopped again after.
integration:
	@was_up=1; $(STACK) status >/dev/null 2>&1 || was_up=0; \
	$(STACK) up >/dev/null || exit 1; \
	eval "$$($(STACK) env)"; \
	$(PYTEST) -m integration tests/integration tests/test_subscribe.py \
	    tests/test_transfer_pacifica.py; status=$$?; \
	[ $$was_up = 1 ] || $(STACK) down >/dev/null; \
	exit $$status

fault:
	$(PYTEST) tests/fault -m fault

fuzz:
	$(PYTEST) $(FUZZ_TESTS) $(NOT_SLOW)

# The sandbox escape attempts alone (part of unit).
escapes:
	$(PYTEST) tests/test_escapes.py tests/test_sandbox.py

figures:
	$(PYTHON) scripts/summary.py $(FIGURES)

stack-down:
	$(STACK) down
