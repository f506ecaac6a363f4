# The two commands: `make run` starts the node, `make test` runs the suite.
# Both create .venv and install what they need (see bootstrap.py). Extra arguments: ARGS="...".
PYTHON ?= python3

.PHONY: run test setup bench
run:
	$(PYTHON) bootstrap.py run -- $(ARGS)

test:
	$(PYTHON) bootstrap.py test -- $(ARGS)

setup:
	$(PYTHON) bootstrap.py setup

bench:
	$(PYTHON) bootstrap.py setup && .venv/bin/livevace bench $(ARGS)
