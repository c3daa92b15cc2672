# The two commands of a fresh machine: `make demo` (set up, then the main job) and
# `make test` (set up, then lint and the test suite).
.PHONY: demo test test-other-cpu setup

demo:
	scripts/setup.sh
	.venv/bin/gmg demo

test:
	scripts/setup.sh test
	.venv/bin/ruff check training interp probes experiments tests
	.venv/bin/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile  # two processes: the 2-core CI machine

# the suite as another CPU runs it: oneDNN, ATen and MKL kernels capped at another instruction set,
# one thread; a test that holds only for this CPU's kernels fails here (docs/testing.md)
ONEDNN_ISA ?= AVX2
ATEN_CAP ?= avx2
MKL_ISA ?= AVX2
test-other-cpu:
	scripts/setup.sh test
	ONEDNN_MAX_CPU_ISA=$(ONEDNN_ISA) ATEN_CPU_CAPABILITY=$(ATEN_CAP) MKL_ENABLE_INSTRUCTIONS=$(MKL_ISA) OMP_NUM_THREADS=1 \
	  .venv/bin/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile

setup:
	scripts/setup.sh test
