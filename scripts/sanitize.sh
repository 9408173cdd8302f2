#!/usr/bin/env bash
# The test suite under AddressSanitizer and under ThreadSanitizer (optimised builds with
# testability, like `make test`; each in its own build folder, .build-asan and .build-tsan).
#
#   scripts/sanitize.sh [--ci] [address|thread ...]     (default: both)
#
# --ci (what .ci/run uses): the ThreadSanitizer run skips the FID/Inception, metrics and parity
# suites, the three long training-quality tests and the 2-rank sampling and FID jobs (the ASan run
# and the plain suite keep all of them), which under TSan take most of half an hour; everything
# that runs threads (worker pool, buffer pool, prefetcher, batch loader, trainer, run folders, the
# 2-rank training jobs) stays in.
#
# ASan also reports leaks at exit (LeakSanitizer). Under TSan the worker pool, the buffer pool and
# the prefetching loader run as in training. Both builds have the MPI trait: the 2-rank tests
# start the sanitized `maskdm` under mpirun, so the MPI layer runs instrumented too (Open MPI's
# own libraries are not instrumented). Prints each run's wall time.
set -euo pipefail
cd "$(dirname "$0")/.."
ci=0
if [[ ${1:-} == --ci ]]; then ci=1; shift; fi
kinds=("$@")
[[ ${#kinds[@]} -gt 0 ]] || kinds=(address thread)
./scripts/fetch-datasets.sh > /dev/null
./scripts/fetch-fid-weights.sh > /dev/null
for kind in "${kinds[@]}"; do
    scratch=.build-${kind:0:1}san
    [[ $kind == address ]] && scratch=.build-asan
    [[ $kind == thread ]] && scratch=.build-tsan
    start=$(date +%s)
    swift build -c release --build-tests -Xswiftc -enable-testing --traits MPI --sanitize="$kind" --scratch-path "$scratch"
    built=$(date +%s)
    # Swift's own crash backtracer is off: under a sanitizer the sanitizer reports.
    MASKDM_REQUIRE_FID=1 MASKDM_REQUIRE_DATASETS=1 SWIFT_BACKTRACE=enable=no \
        TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/scripts/tsan-suppressions.txt" \
        ASAN_OPTIONS="detect_leaks=1" LSAN_OPTIONS="suppressions=$PWD/scripts/lsan-suppressions.txt:print_suppressions=0" \
        MASKDM_REQUIRE_MPI=1 swift test -c release -Xswiftc -enable-testing --traits MPI --sanitize="$kind" --scratch-path "$scratch" --skip-build \
        $([[ $ci == 1 && $kind == thread ]] && echo '--skip FID|Inception|Demo|Compare|SampleWriter|Metrics|Parity|toyDistribution|tinyModelLearns|maskedPretrainingThenFinetuning|samplingSplitsOverRanks|fidSplitsOverRanks|TrainingEvaluationRunTests|fidDuringTrainingOverRanks')
    echo "sanitize $kind: clean; build $((built - start)) s, tests $(( $(date +%s) - built )) s"
done
