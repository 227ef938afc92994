#!/usr/bin/env bash
# Builds slirpnetd and runs every test (Catch2 unit tests and the hermetic integration tests):
#   1. build/        default compiler (g++), bundled libslirp (the default), all tests, among them
#                    package/deb (the Debian package built, installed, run and purged: defined in
#                    this build only, see tests/CMakeLists.txt);
#   2. build-system/ g++, -DSLIRPNETD_LIBSLIRP=system (Debian's shared libslirp), all tests but
#                    the bundled library's own (tests/unit/test_libslirp*: not built there);
#   3. build-asan/   g++,     -DSLIRPNETD_SANITIZE=address (ASan + UBSan), all tests;
#   4. build-tsan/   clang++, -DSLIRPNETD_SANITIZE=thread  (TSan), all tests.
# The bundled libslirp is compiled with the same compiler and sanitizer as the rest.
# Any sanitizer report fails the run: the *SAN_OPTIONS below halt on the first error with a
# distinctive exit status, and the integration harness also greps the daemons' stderr for reports.
# Exits non-zero if any step failed and prints a summary. Run as root (the integration tests create
# namespaces): sudo scripts/test.sh
#
# Environment:
#   SLIRPNETD_SANITIZERS=0   no sanitizer builds (steps 3 and 4 skipped)
#   SLIRPNETD_SYSTEM=0       no system-libslirp build (step 2 skipped)
#   SLIRPNETD_FUZZ_SECONDS=N libFuzzer seconds per target (default 20; 0 skips fuzzing)
#   SLIRPNETD_WERROR=OFF     do not build with -Werror (default ON, as CI should)
#   JOBS=N                   build and ctest parallelism (default: nproc)
#   CTEST_ARGS="..."         extra ctest arguments, e.g. "-L integration" or "-R dns"
#   SLIRPNETD_BUILD_DIR=b    build directories b, b-asan, b-tsan (default: build)
#   CI=true                  a skipped test fails the run (see record_skips below)
#   SLIRPNETD_ALLOW_SKIPS=1  with CI=true: list skipped tests but do not fail on them
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
JOBS=${JOBS:-$(nproc)}
WERROR=${SLIRPNETD_WERROR:-ON}
read -r -a EXTRA_CTEST <<<"${CTEST_ARGS:-}"
BUILD=${SLIRPNETD_BUILD_DIR:-build}
START=$SECONDS

if [[ $EUID -ne 0 ]]; then
  echo "test.sh: the integration tests create network, mount and pid namespaces: run as root" \
    "(sudo $0)" >&2
  exit 1
fi
bash "$ROOT/scripts/deps.sh" || { echo "test.sh: scripts/deps.sh failed" >&2; exit 1; }

SUMMARY=()
FAILED=0
record() {  # STATUS WHAT SECONDS [DETAIL]
  SUMMARY+=("$(printf '%-4s  %-34s %4ss  %s' "$1" "$2" "$3" "${4:-}")")
  [[ $1 == PASS ]] || FAILED=1
}

# record_skips NAME CTEST_LOG: names the tests ctest did not run (skipped: an integration test's
# status 77, a unit test's SLIRPNETD-TEST-SKIPPED line; or disabled), from the list ctest prints at
# the end ("The following tests did not run:"). ctest counts them in "100% tests passed", so the
# summary names them. Under CI=true a skip also fails the run: CI runs as root on a machine where
# scripts/deps.sh installed every package, so a skip there means something meant to be tested was
# not (a package that failed to install, a lost capability) and nobody would read a list in a green
# run. SLIRPNETD_ALLOW_SKIPS=1 turns that into the list alone.
record_skips() {
  local name=$1 log=$2 skipped
  skipped=$(sed -n '/^The following tests did not run:/,/^$/p' "$log" |
    sed -nE 's/^[[:space:]]+[0-9]+ - (.*)$/\1/p')
  [[ -n $skipped ]] || return 0
  local n status=SKIP
  n=$(wc -l <<<"$skipped")
  if [[ ${CI:-} == true && ${SLIRPNETD_ALLOW_SKIPS:-0} == 0 ]]; then
    status=FAIL
    FAILED=1
  fi
  SUMMARY+=("$status  $name: $n test(s) did not run (not counted as passed)")
  local l
  while read -r l; do SUMMARY+=("        $l"); done <<<"$skipped"
}

# run_ctest DIR LOG [ENV=VALUE...] -- CTEST_ARGS...: ctest in DIR, its output also in LOG. Tests
# that fail are run once more, one at a time (ctest --rerun-failed): if they all pass then, the
# status is 0 but FLAKY names them and the summary lists them as FLAKY under a PASS, with their
# first failure's output above in the log. A flaky test is a bug to find (a test that failed once
# showed a real start-up race), not a pass to forget; the second try keeps one unlucky schedule on
# a loaded 2-CPU machine from hiding every other result. Sets CTEST_STATUS and FLAKY.
run_ctest() {
  local dir=$1 log=$2
  shift 2
  local envs=()
  while [[ $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  CTEST_STATUS=0
  FLAKY=""
  env "${envs[@]}" ctest --test-dir "$dir" --output-on-failure --timeout 300 -j "$JOBS" \
    "$@" "${EXTRA_CTEST[@]}" 2>&1 | tee "$log" || CTEST_STATUS=$?
  ((CTEST_STATUS != 0)) || return 0
  local failed
  failed=$(sed -n '/The following tests FAILED:/,$p' "$log" | sed -nE 's/^[[:space:]]+[0-9]+ - ([^ ]+).*$/\1/p')
  [[ -n $failed ]] || return 0
  echo "======== once more, one at a time: $(tr '\n' ' ' <<<"$failed")"
  local retry_status=0
  env "${envs[@]}" ctest --test-dir "$dir" --output-on-failure --timeout 300 -j 1 --rerun-failed \
    2>&1 | tee "$log.retry" || retry_status=$?
  if ((retry_status == 0)) && grep -q '100% tests passed' "$log.retry"; then
    CTEST_STATUS=0
    FLAKY=$failed
    # The line the caller reports, from the first run, with what the second try changed.
    echo "(second try: $(grep -E 'tests passed' "$log.retry" | tail -1))" >>"$log"
  fi
}

record_flaky() {  # the tests run_ctest found flaky, under the PASS line
  [[ -n $FLAKY ]] || return 0
  local l
  while read -r l; do SUMMARY+=("FLAKY   $l: failed, then passed alone (its first output is in the log above)"); done <<<"$FLAKY"
}

# suite NAME DIR [ENV=VALUE...] -- CMAKE_ARGS...: configure, build, ctest.
suite() {
  local name=$1 dir=$ROOT/$2
  shift 2
  local envs=()
  while [[ $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  echo
  echo "======== $name: configure + build in ${dir#"$ROOT"/}"
  local t0=$SECONDS
  if ! cmake -S "$ROOT" -B "$dir" -DSLIRPNETD_WERROR="$WERROR" "$@" ||
     ! cmake --build "$dir" -j "$JOBS"; then
    record FAIL "$name: build" $((SECONDS - t0))
    return
  fi
  record PASS "$name: build" $((SECONDS - t0))

  echo "======== $name: ctest"
  t0=$SECONDS
  local log=$dir/ctest-summary.log status
  run_ctest "$dir" "$log" "${envs[@]}" --
  status=$CTEST_STATUS
  local line
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of' "$log" | tail -1)
  if ((status == 0)) && [[ -n $line ]]; then
    record PASS "$name: ctest" $((SECONDS - t0)) "$line${FLAKY:+ (all passed on a second try)}"
    record_flaky
  else
    record FAIL "$name: ctest" $((SECONDS - t0)) "${line:-ctest exited with status $status}"
    # The names of the failed tests, for the summary.
    local l
    while read -r l; do SUMMARY+=("        $l"); done < <(
      sed -n '/The following tests FAILED:/,$p' "$log" | grep -E '^[[:space:]]+[0-9]+ - ')
  fi
  record_skips "$name" "$log"
}

suite "default (g++, bundled libslirp)" "$BUILD" -- -DCMAKE_BUILD_TYPE=RelWithDebInfo

if [[ ${SLIRPNETD_SYSTEM:-1} != 0 ]]; then
  suite "system libslirp (g++)" "$BUILD-system" -- -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSLIRPNETD_LIBSLIRP=system
else
  echo "test.sh: SLIRPNETD_SYSTEM=0: skipping the system-libslirp build"
fi

# The integration tests once more with every daemon under the seccomp allow-list
# (SLIRPNETD_TEST_SECCOMP=1, see tests/integration/lib.sh): a system call missing from the
# sources' #syscalls lines kills the daemon with a log line, and the test fails. About two minutes.
echo
echo "======== seccomp: integration tests with --enable-seccomp ($BUILD)"
t0=$SECONDS
seccomp_log=$ROOT/$BUILD/ctest-seccomp.log
run_ctest "$ROOT/$BUILD" "$seccomp_log" SLIRPNETD_TEST_SECCOMP=1 -- -L integration -LE reference
line=$(grep -E 'tests passed, [0-9]+ tests? failed out of' "$seccomp_log" | tail -1)
if [[ $line == "100% tests passed"* || ( $CTEST_STATUS == 0 && -n $FLAKY ) ]]; then
  record PASS "seccomp: integration" $((SECONDS - t0)) "$line${FLAKY:+ (all passed on a second try)}"
  record_flaky
else
  record FAIL "seccomp: integration" $((SECONDS - t0)) "${line:-ctest failed}"
fi
record_skips "seccomp: integration" "$seccomp_log"

if [[ ${SLIRPNETD_SANITIZERS:-1} != 0 ]]; then
  suite "asan+ubsan (g++)" "$BUILD-asan" \
    "ASAN_OPTIONS=halt_on_error=1:exitcode=86:detect_leaks=1:abort_on_error=0" \
    "UBSAN_OPTIONS=halt_on_error=1:exitcode=87:print_stacktrace=1" \
    "SLIRPNETD_TIME_SCALE=3" "SLIRPNETD_BULK_BYTES=134217728" \
    -- -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ -DSLIRPNETD_SANITIZE=address -DCMAKE_BUILD_TYPE=RelWithDebInfo
  suite "tsan (clang++)" "$BUILD-tsan" \
    "TSAN_OPTIONS=halt_on_error=1:exitcode=88:second_deadlock_stack=1" \
    "SLIRPNETD_TIME_SCALE=4" "SLIRPNETD_BULK_BYTES=134217728" \
    -- -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DSLIRPNETD_SANITIZE=thread -DCMAKE_BUILD_TYPE=RelWithDebInfo
else
  echo "test.sh: SLIRPNETD_SANITIZERS=0: skipping the ASan/UBSan and TSan builds"
fi

# Short libFuzzer runs (clang, ASan+UBSan) of the API handler, the option parser and the frame path,
# seeded from tests/fuzz/corpus and replaying tests/fuzz/regressions first.
FUZZ_SECONDS=${SLIRPNETD_FUZZ_SECONDS:-20}
if [[ $FUZZ_SECONDS != 0 ]]; then
  echo
  echo "======== fuzz: ${FUZZ_SECONDS}s per target in $BUILD-fuzz"
  t0=$SECONDS
  if bash "$ROOT/tests/fuzz/run.sh" --seconds "$FUZZ_SECONDS" --build-dir "$ROOT/$BUILD-fuzz"; then
    record PASS "fuzz (4 libFuzzer targets)" $((SECONDS - t0)) "no crash in ${FUZZ_SECONDS}s each"
  else
    record FAIL "fuzz (4 libFuzzer targets)" $((SECONDS - t0)) "see the output above"
  fi
fi

echo
echo "======== summary ($((SECONDS - START)) s)"
printf '%s\n' "${SUMMARY[@]}"
if ((FAILED)); then
  echo "RESULT: FAILED"
  exit 1
fi
echo "RESULT: ALL PASSED"
