#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz/ with clang (build-fuzz/),
# writes their seeds, and runs each for a bounded time, as many at once as
# there are cores (each harness is one process on one core).
#
#   tests/fuzz/run.sh [SECONDS [RUNS]]
#
# SECONDS per harness (default 60; 0: no time limit); RUNS, when given, ends
# each harness after that many executions instead (tests/fuzz/run.sh 0 1000000
# is the million-execution run the README reports).
#
# Environment: HEARTH_TEST_MODELS (default ../shared/models beside the repo),
# HEARTH_FUZZ_BUILD (default build-fuzz), HEARTH_FUZZ_JOBS (ninja -j and the
# harnesses run at once, default: the number of cores), PYTHON (default
# python3). Each harness keeps its corpus in
# BUILD/corpus/NAME (it grows from run to run), its log in BUILD/logs/NAME.log
# and any crashing input in BUILD/crashes/NAME/. Exits non-zero when any
# harness found a crash, a sanitizer report, a timeout or an out-of-memory.
set -euo pipefail

seconds=${1:-60}
runs=${2:-}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${HEARTH_FUZZ_BUILD:-$repo/build-fuzz}
python=${PYTHON:-python3}
export HEARTH_TEST_MODELS=${HEARTH_TEST_MODELS:-$repo/../shared/models}

harnesses=(fuzz_gguf fuzz_tokenizer_bpe fuzz_tokenizer_spm fuzz_detokenizer fuzz_chat_format)

CC=clang CXX=clang++ cmake -S "$repo" -B "$build" -G Ninja -DHEARTH_FUZZ=ON -DHEARTH_BUILD_PYTHON=OFF >/dev/null
jobs=${HEARTH_FUZZ_JOBS:-$(nproc)}
ninja -C "$build" -j"$jobs" "${harnesses[@]}"
"$python" "$repo/tests/fuzz/make_seeds.py" "$build/seeds"

seeds=$build/seeds
vocab_bpe=$(cat "$seeds/vocab/bpe")
vocab_spm=$(cat "$seeds/vocab/spm")

# The seed folder and the vocabularies of each harness.
seeds_of() {
    case $1 in
        fuzz_tokenizer_*) echo "$seeds/fuzz_tokenizer" ;;
        *) echo "$seeds/$1" ;;
    esac
}
vocab_of() {
    case $1 in
        fuzz_tokenizer_bpe) echo "$vocab_bpe" ;;
        fuzz_tokenizer_spm) echo "$vocab_spm" ;;
        fuzz_detokenizer) echo "$vocab_bpe:$vocab_spm" ;;
        *) echo "" ;;
    esac
}

# run_one NAME: runs one harness; its table row goes to BUILD/logs/NAME.row,
# its exit status to BUILD/logs/NAME.rc.
run_one() {
    local h=$1
    local corpus=$build/corpus/$h crashes=$build/crashes/$h log=$build/logs/$h.log
    mkdir -p "$corpus" "$crashes" "$(dirname "$log")"
    local start end rc=0 execs wall rate result=ok
    start=$(date +%s.%N)
    local extra=()
    # a dictionary of the metadata keys and tensor names the loader looks for
    if [ "$h" = fuzz_gguf ]; then extra=(-dict="$repo/tests/fuzz/gguf.dict"); fi
    # the inputs that once failed are seeds too (read only, as the seeds)
    if [ -d "$repo/tests/fuzz/regressions/$h" ]; then extra+=("$repo/tests/fuzz/regressions/$h"); fi
    if [ -n "$runs" ]; then extra+=(-runs="$runs"); fi
    HEARTH_FUZZ_VOCAB=$(vocab_of "$h") "$build/$h" "$corpus" "$(seeds_of "$h")" ${extra[@]+"${extra[@]}"} \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$crashes/" >"$log" 2>&1 || rc=$?
    end=$(date +%s.%N)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    execs=${execs:-0}
    wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    rate=$(awk -v n="$execs" -v t="$wall" 'BEGIN { printf "%.0f", (t > 0 ? n / t : 0) }')
    [ "$rc" -eq 0 ] || result="FAILED (exit $rc; see $log and $crashes/)"
    printf '%-20s %12s %9s %10s  %s\n' "$h" "$execs" "$wall" "$rate" "$result" >"$build/logs/$h.row"
    echo "$rc" >"$build/logs/$h.rc"
}

mkdir -p "$build/logs"
rm -f "$build"/logs/*.row "$build"/logs/*.rc
for h in "${harnesses[@]}"; do
    # at most $jobs at once: wait for one to end before starting the next
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    run_one "$h" &
done
wait
failed=()
for h in "${harnesses[@]}"; do
    [ "$(cat "$build/logs/$h.rc" 2>/dev/null)" = 0 ] || failed+=("$h")
done

printf '%-20s %12s %9s %10s  %s\n' harness executions seconds exec/s result
for h in "${harnesses[@]}"; do cat "$build/logs/$h.row"; done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing found problems in: ${failed[*]}" >&2
    exit 1
fi
