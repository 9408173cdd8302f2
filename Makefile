# The two commands of the README: `make demo` (the two-stage MaskDM pipeline on the embedded
# default data) and `make test` (the test suite). Both install what they need first.
.PHONY: setup demo test bench bench-compare python

setup:
	./scripts/setup.sh

demo: setup
	swift build -c release --product maskdm
	.build/release/maskdm pipeline $(ARGS)

test: setup
	swift build --build-tests
	swift test --skip-build

python:
	./scripts/setup-python.sh

bench: setup
	swift build -c release --product maskdm-bench
	.build/release/maskdm-bench all $(ARGS)

bench-compare: setup python
	swift build -c release --product maskdm-bench
	.venv/bin/python Benchmarks/compare.py all $(ARGS)
