# The two commands of the README: `make demo` (the two-stage MaskDM pipeline on the embedded
# default data) and `make test` (the test suite). Both install what they need first.
.PHONY: setup demo test mpi bench bench-compare bench-lockstep python reference doc-coverage fuzz sanitize

setup:
	./scripts/setup.sh

# Built with the MPI trait, as `make test` and `make mpi` build it: one binary in .build/release
# runs alone and under mpirun. ARGS with --quick writes runs/demo-quick, so a smoke test never
# stands in the way of the full demo (a later --out in ARGS wins over either).
demo: setup
	./scripts/fetch-fid-weights.sh
	swift build -c release --traits MPI --product maskdm
	.build/release/maskdm pipeline --out $(if $(findstring --quick,$(ARGS)),runs/demo-quick,runs/demo) $(ARGS)

# Tests run on an optimised build (-O with testability; preconditions stay on): the training
# tests are ~50x slower in a debug build. The build has the MPI trait, so the 2-rank tests run.
test: setup
	./scripts/fetch-datasets.sh
	./scripts/fetch-fid-weights.sh
	swift build -c release --build-tests -Xswiftc -enable-testing --traits MPI
	MASKDM_REQUIRE_FID=1 MASKDM_REQUIRE_DATASETS=1 MASKDM_REQUIRE_MPI=1 swift test -c release -Xswiftc -enable-testing --traits MPI --skip-build

# maskdm with data-parallel training over Open MPI (`mpirun -np N .build/release/maskdm pretrain ...`).
mpi: setup
	swift build -c release --traits MPI --product maskdm

python:
	./scripts/setup-python.sh

# The reference repository at its pinned commit, with timm and einops, in .cache/reference:
# bench-compare then times the reference's own model in the step cases too.
reference: python
	./scripts/setup-reference.sh

# SUITE picks the cases (default all; bench: peak, matmul, gemm, attention, step, sample, fid;
# bench-compare: matmul, gemm-shapes (with NAME:ROWS:IN:OUT shapes in ARGS), attention, step, sample, fid;
# its all is matmul, attention and step, with the Swift side's gemm sweep, which PyTorch does not run),
# ARGS adds options:
#   make reference; make bench-compare SUITE=step ARGS="--quick"   (reference model as a third side).
SUITE ?= all

bench: setup
	case "$(SUITE)" in fid) ./scripts/fetch-fid-weights.sh ;; esac   # the Inception weights the fid suite loads
	swift build -c release --product maskdm-bench
	.build/release/maskdm-bench $(SUITE) $(ARGS)

bench-compare: setup python
	case "$(SUITE)" in fid) ./scripts/fetch-fid-weights.sh ;; esac   # the PyTorch side's Inception weights
	swift build -c release --product maskdm-bench
	.venv/bin/python Benchmarks/compare.py $(SUITE) $(ARGS)

# The step cases (or, with ARGS="--case sample_demo_dpm20 ...", sampling runs) of both sides as live
# processes, alternated step by step: ratios that drift in the machine's speed cannot bias.
bench-lockstep: setup python
	swift build -c release --product maskdm-bench
	.venv/bin/python Benchmarks/lockstep.py $(ARGS)

# Share of the public API with doc comments, from the compiler's symbol graphs (a debug build).
doc-coverage:
	# (the test modules' graphs fail to emit; the library modules' are what is measured)
	-swift package --scratch-path .build-docs dump-symbol-graph --minimum-access-level public --skip-synthesized-members > /dev/null 2>&1
	python3 scripts/doc_coverage.py $$(ls -d .build-docs/*/symbolgraph .build-docs/symbolgraph 2>/dev/null | head -1) $(ARGS)

# Coverage-guided fuzzing of every file parser (libFuzzer + AddressSanitizer), SECONDS per target.
SECONDS ?= 60
fuzz: setup
	./scripts/fuzz.sh $(SECONDS)

# The test suite under AddressSanitizer, then ThreadSanitizer (separate build folders).
sanitize: setup
	./scripts/sanitize.sh
