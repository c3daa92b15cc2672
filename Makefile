# The two commands of a fresh machine: `make demo` (set up, then the main job) and
# `make test` (set up, then lint and the test suite).
.PHONY: demo test setup

demo:
	scripts/setup.sh
	.venv/bin/gmg demo

test:
	scripts/setup.sh test
	.venv/bin/ruff check training interp probes experiments tests
	.venv/bin/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile  # two processes: the 2-core CI machine

setup:
	scripts/setup.sh test
