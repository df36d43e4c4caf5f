#!/usr/bin/env bash
# Builds the engine with AddressSanitizer + UBSan (build-sanitize/, never
# touching build/ or python/hearthlm/_core*.so) and runs pytest against it.
#
#   tests/sanitize/run.sh                      # the CI subset below
#   tests/sanitize/run.sh tests/test_gguf.py   # given test files / pytest args
#   tests/sanitize/run.sh --all                # the whole suite (slow)
#
# Any sanitizer report, in pytest's own process or in any child (hearth, a
# converter, a server), fails the run: reports go to files in
# build-sanitize/logs/, tests/sanitize/report_check.py fails the test that
# produced one, and this script fails if any is left at the end.
# Env: HEARTH_SANITIZE (default address,undefined), HEARTH_SANITIZE_BUILD
# (default build-sanitize), HEARTH_SANITIZE_JOBS (pytest workers, default
# the cores up to 2; 1: one process), PYTHON (default python),
# HEARTH_TEST_MODELS.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"

SANITIZERS="${HEARTH_SANITIZE:-address,undefined}"
BUILD="${HEARTH_SANITIZE_BUILD:-$ROOT/build-sanitize}"
PY="$("${PYTHON:-python}" -c 'import sys; print(sys.executable)')"
OVERLAY="$BUILD/overlay"   # a copy of python/hearthlm with the sanitized _core
LOGS="$BUILD/logs"
# A pytest worker per core, up to two (pytest-xdist, when installed): most
# of the subset (tokenizers, kernels) runs on one thread, and ASan makes it
# slow. Each ASan'd worker holds torch, the models and up to 256 MB of
# quarantine: more workers only when HEARTH_SANITIZE_JOBS asks.
jobs="${HEARTH_SANITIZE_JOBS:-$(( $(nproc) < 2 ? $(nproc) : 2 ))}"
case "$jobs" in ''|*[!0-9]*) echo "HEARTH_SANITIZE_JOBS must be a whole number, got '$jobs'" >&2; exit 2 ;; esac

# The CI subset: kernels, GGUF reading/quants (with broken files, the fuzzers'
# regression inputs and oversized requests), tokenizers, engine (KV cache,
# batching, generation, sampling). About 4 min of tests under ASan in two
# workers on 2 cores (6 in one process).
DEFAULT_TESTS=(
  tests/test_kernels.py tests/test_quants.py tests/test_k_quants.py
  tests/test_bad_files.py tests/test_fuzz_regressions.py tests/test_resource_limits.py
  tests/test_tokenizer.py tests/test_pretokenize.py
  tests/test_kv_cache.py tests/test_kv_q8.py tests/test_continuous_batching.py tests/test_generate.py tests/test_sampling.py
)
# Not meaningful under ASan, deselected in every run here:
# - qemu-user cannot run an ASan process (its shadow memory does not fit the
#   emulated address space); these tests check instruction sets, not memory.
# - the load test asserts a flat resident size, which ASan's quarantine of
#   freed memory (up to 256 MB) and shadow pages make grow without any leak.
DESELECT=(
  --ignore tests/test_portability.py
  --deselect tests/test_kernels.py::test_kernels_pass_on_an_emulated_haswell_without_avx512
  --deselect tests/test_server_load.py::test_a_load_run_leaks_nothing_and_fails_no_valid_request
)

# no test file or folder among the arguments (only options: -x, -k EXPR): the CI subset
if [ "${1:-}" = "--all" ]; then shift; set -- tests "$@"; fi
has_path=0
for a in "$@"; do [ ! -e "${a%%::*}" ] || has_path=1; done
[ "$has_path" = 1 ] || set -- "${DEFAULT_TESTS[@]}" "$@"

# --- build --------------------------------------------------------------------
# -O1, as AddressSanitizer's documentation suggests: it compiles in two thirds
# of -O2's time (the build is half of this script's time in CI) and runs the
# tests about as fast, the kernels being intrinsics either way. (CMakeLists.txt
# compiles the pybind11 bindings of a sanitizer build at -O0.)
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g -DNDEBUG" \
  -DHEARTH_SANITIZE="$SANITIZERS" -DPython_EXECUTABLE="$PY" \
  -DHEARTH_PYTHON_MODULE_DIR="$OVERLAY/hearthlm" >/dev/null
ninja -C "$BUILD" -j2 _core hearth

# --- the package under test: python/hearthlm copied, with the sanitized _core
# and, where an installed package keeps it, hearthlm/bin/hearth (a copy rather
# than symlinks: the launcher finds bin/ from its resolved __file__).
find "$OVERLAY/hearthlm" -mindepth 1 -maxdepth 1 ! -name '_core*' -exec rm -rf {} +
(cd python/hearthlm && find . -mindepth 1 -maxdepth 1 ! -name '_core*' ! -name __pycache__ ! -name bin \
   -exec cp -R {} "$OVERLAY/hearthlm/" \;)
find "$OVERLAY/hearthlm" -name __pycache__ -prune -exec rm -rf {} +
mkdir -p "$OVERLAY/hearthlm/bin" "$BUILD/bin" "$BUILD/path"
# the executable itself: a launcher test checks that it becomes this very file
ln -sf "$BUILD/hearth" "$OVERLAY/hearthlm/bin/hearth"

rm -rf "$LOGS" && mkdir -p "$LOGS"
# halt_on_error: the first report ends the process. log_path: reports go to
# $LOGS/{asan,ubsan}.PID, where report_check.py and the end of this script
# find them whatever the process's stderr was redirected to.
halt="halt_on_error=1:abort_on_error=0"
common="$halt:log_path=$LOGS/asan"
# pytest and every Python child: no leak check. CPython and torch keep
# allocations alive until exit on purpose (interned objects, arenas, caches),
# so LeakSanitizer would report them on every run.
PY_ASAN_OPTIONS="$common:detect_leaks=0"

# $HEARTH_BIN, which the tests run: the executable with leak checking on,
# its reports in the folder of the pytest worker that runs it
# ($HEARTH_SANITIZE_LOGS, which report_check.py sets per worker).
cat > "$BUILD/bin/hearth" <<EOF
#!/bin/sh
# written by tests/sanitize/run.sh: the ASAN_OPTIONS inherited from pytest
# turn leak checking off (for Python); the hearth executable has it on.
ASAN_OPTIONS="$halt:log_path=\${HEARTH_SANITIZE_LOGS:-$LOGS}/asan:detect_leaks=1" exec '$BUILD/hearth' "\$@"
EOF
chmod +x "$BUILD/bin/hearth"

# Chromium (tests/test_server_web_page.py) is not ours and does not start
# with libasan preloaded: it runs without the preload.
if real_chromium="$(command -v chromium)"; then
  printf '#!/bin/sh\nunset LD_PRELOAD\nexec %s "$@"\n' "'$real_chromium'" > "$BUILD/path/chromium"
  chmod +x "$BUILD/path/chromium"
fi

# UBSan ignores log_path next to ASan (GCC): this helper sets its report path.
gcc -shared -fPIC -O1 -o "$BUILD/libubsan_log_path.so" "$ROOT/tests/sanitize/ubsan_log_path.c" -ldl

# --- run ----------------------------------------------------------------------
workers=()
if [ "$jobs" -gt 1 ] && "$PY" -c 'import xdist' 2>/dev/null; then workers=(-n "$jobs" --dist worksteal); fi
# libasan must be the first library of the process: Python itself is not
# instrumented, so it is preloaded (and inherited by every child).
PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so):$BUILD/libubsan_log_path.so"
status=0
env LD_PRELOAD="$PRELOAD" \
    ASAN_OPTIONS="$PY_ASAN_OPTIONS" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    HEARTH_UBSAN_LOG_PATH="$LOGS/ubsan" \
    HEARTH_BIN="$BUILD/bin/hearth" \
    PATH="$BUILD/path:$PATH" \
    HEARTH_SANITIZE_LOGS="$LOGS" \
    HEARTH_TEST_MODELS="${HEARTH_TEST_MODELS:-$ROOT/../shared/models}" \
    PYTHONPATH="$OVERLAY:$ROOT/tests/sanitize" \
    "$PY" -m pytest -q -ra -p no:cacheprovider -p report_check "${workers[@]}" "${DESELECT[@]}" "$@" || status=$?

# the shared folder's reports and each worker's
shopt -s nullglob
reports=("$LOGS"/*san.* "$LOGS"/*/*san.*)
if [ "${#reports[@]}" -gt 0 ]; then
  echo "=== sanitizer reports (pytest's last tests: $(cat "$LOGS"/current-test "$LOGS"/*/current-test 2>/dev/null | tr '\n' ' ')) ==="
  for f in "${reports[@]}"; do echo "--- $f"; cat "$f"; done
  [ "$status" -ne 0 ] || status=1
fi
exit "$status"
