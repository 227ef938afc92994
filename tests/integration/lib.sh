# shellcheck shell=bash
# tests/integration/lib.sh: the hermetic harness every tests/integration/t_*.sh sources first.
#
# On first source it re-executes the test under
#   timeout unshare --net --mount --pid --fork --kill-child --mount-proc
# so the test gets a private "host": a network namespace with only `lo`, a private mount namespace
# and a pid namespace whose init is the test itself (when it exits, the kernel kills everything
# the test started). Inside, it then
#   - brings `lo` up and makes every mount private;
#   - mounts a tmpfs on the test's temp dir ($TMP): at most an empty directory is left on the host;
#   - bind-mounts a resolv.conf naming 127.0.0.1 over /etc/resolv.conf, and starts dnsd.py on
#     127.0.0.1:53 (UDP and TCP): libslirp's DNS forwarder never reaches the real resolver;
#   - installs an EXIT trap that stops the daemons (SIGTERM, then SIGKILL), kills the other
#     processes the test started (by PID), fails the test if a daemon's stderr holds a sanitizer
#     report, and prints the daemons' logs when the test failed.
#
# The daemon under test is $SLIRPNETD (CTest sets it; default: <repo>/build/slirpnetd). Tests were
# validated against Debian's slirp4netns 1.2.0: `SLIRPNETD=/usr/bin/slirp4netns bash t_x.sh`.
# Needs root (CTest runs it as root). Run as non-root, the outer namespaces are created inside a
# user namespace instead; tests needing real root then exit with SKIP_STATUS (77).
#
# Test shape:
#   source "$(dirname "$0")/lib.sh"
#   start_container                     # -> $C
#   start_daemon -c "$C" tap0           # -> $DAEMON_PID, $DAEMON_OUT, $DAEMON_ERR
#   wait_for_addr "$C" tap0 10.0.2.100
#   assert_eq ...
#   pass                                # a test that ends without `pass` fails

set -euo pipefail
set -E  # the ERR trap below also fires inside functions

ITEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$ITEST_DIR/../.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
NETTOOL=$ITEST_DIR/nettool.py
DNSD=$ITEST_DIR/dnsd.py
TEST_NAME=$(basename "$0" .sh)
SKIP_STATUS=77
# Integer factor applied to every wait (scripts/test.sh sets it for sanitizer builds, which run
# several times slower). Exported: nettool.py and dnsd.py scale their timeouts too.
export SLIRPNETD_TIME_SCALE=${SLIRPNETD_TIME_SCALE:-1}
TS=$SLIRPNETD_TIME_SCALE

if [[ -z ${SLIRPNETD_HERMETIC:-} ]]; then
  SLIRPNETD=${SLIRPNETD:-$REPO_DIR/build/slirpnetd}
  [[ $SLIRPNETD == /* ]] || SLIRPNETD=$PWD/$SLIRPNETD
  if [[ ! -x $SLIRPNETD ]]; then
    echo "FAIL [$TEST_NAME]: daemon binary not found or not executable: $SLIRPNETD" \
      "(build it, or set SLIRPNETD=/path/to/slirpnetd)" >&2
    exit 1
  fi
  for tool in unshare nsenter ip timeout "$PYTHON"; do
    command -v "$tool" >/dev/null || { echo "FAIL [$TEST_NAME]: missing tool: $tool (run scripts/deps.sh)" >&2; exit 1; }
  done
  outer_userns=()
  if [[ $EUID -ne 0 ]]; then
    outer_userns=(--user --map-root-user)
    export SLIRPNETD_OUTER_USERNS=1
  fi
  export SLIRPNETD SLIRPNETD_HERMETIC=1
  # --kill-child: if unshare dies (e.g. killed by timeout), the test's init gets SIGKILL and the
  # kernel tears the whole pid namespace down.
  exec timeout --kill-after=5 "${SLIRPNETD_TEST_TIMEOUT:-$((120 * TS))}" \
    unshare "${outer_userns[@]}" --net --mount --pid --fork --kill-child --mount-proc \
    -- bash "$(realpath "$0")" "$@"
fi

# ---------------------------------------------------------------------------------------------
# Reporting

log() { echo "# $*" >&2; }

# Called on any failure. Only call it from the test's own shell, never inside $(...).
fail() {
  echo "FAIL [$TEST_NAME]: $*" >&2
  exit 1
}

PASSED=
pass() {
  PASSED=1
  echo "PASS [$TEST_NAME]"
  exit 0
}

# For tests that need something the environment lacks: exits 77, which CTest reports as skipped
# (tests/CMakeLists.txt gives every integration test SKIP_RETURN_CODE 77), never as passed.
skip() {
  PASSED=1
  echo "SKIP [$TEST_NAME]: $*"
  exit "$SKIP_STATUS"
}

trap 'echo "FAIL [$TEST_NAME]: line $LINENO: command failed (status $?): $BASH_COMMAND" >&2' ERR

assert_eq() {  # EXPECTED ACTUAL WHAT
  [[ $1 == "$2" ]] || fail "$3: expected '$1', got '$2'"
}

assert_contains() {  # HAYSTACK NEEDLE WHAT
  [[ $1 == *"$2"* ]] || fail "$3: expected to contain '$2', got: '$1'"
}

assert_not_contains() {  # HAYSTACK NEEDLE WHAT
  [[ $1 != *"$2"* ]] || fail "$3: expected not to contain '$2', got: '$1'"
}

assert_match() {  # HAYSTACK ERE WHAT
  [[ $1 =~ $2 ]] || fail "$3: expected to match /$2/, got: '$1'"
}

# wait_for COND [TIMEOUT_S [PID]]: evaluates the shell condition every 0.1 s until it succeeds;
# fails the test after TIMEOUT_S (default 10; times $TS), or as soon as PID (if given) has exited.
# Every command in COND must itself be bounded.
wait_for() {
  local cond=$1 timeout=$((${2:-10} * TS)) pid=${3:-}
  local deadline=$((SECONDS + timeout))
  until eval "$cond" >/dev/null 2>&1; do
    if [[ -n $pid ]] && ! alive "$pid"; then
      wait_exit "$pid" 1 || true
      fail "process $pid exited (status ${EXIT_STATUS:-?}) while waiting for: $cond"
    fi
    ((SECONDS < deadline)) || fail "timed out after ${timeout}s waiting for: $cond"
    sleep 0.1
  done
}

# wait_daemon COND [TIMEOUT_S]: wait_for, failing at once if the last daemon started exits.
wait_daemon() {
  wait_for "$1" "${2:-10}" "$DAEMON_PID"
}

# ---------------------------------------------------------------------------------------------
# Processes. Everything a test starts is tracked by PID and killed by PID in cleanup.

BG_PIDS=()
DAEMON_PIDS=()
DAEMON_N=0

# start_bg NAME CMD...: runs CMD in the background, output to $TMP/NAME.log; sets BG_PID.
start_bg() {
  local name=$1
  shift
  "$@" </dev/null >"$TMP/$name.log" 2>&1 &
  BG_PID=$!
  BG_PIDS+=("$BG_PID")
}

# kill_quietly PID: SIGKILL a child of this shell and reap it without bash's "Killed" message.
kill_quietly() {
  { kill -KILL "$1" && wait "$1"; } 2>/dev/null || true
}

# True while PID exists and is not a zombie.
alive() {
  [[ -e /proc/$1/stat ]] || return 1
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# wait_exit PID [TIMEOUT_S]: waits for a child of this shell to exit; sets EXIT_STATUS (128+N when
# killed by signal N). Returns 1 (without failing) if it is still running after the timeout (times
# $TS).
wait_exit() {
  local pid=$1 timeout=$((${2:-10} * TS))
  local deadline=$((SECONDS + timeout))
  while alive "$pid"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
  EXIT_STATUS=0
  wait "$pid" 2>/dev/null || EXIT_STATUS=$?
}

# expect_exit PID TIMEOUT WHAT: like wait_exit, but fails the test on timeout.
expect_exit() {
  wait_exit "$1" "$2" || fail "$3: process $1 still running after $(($2 * TS)) s"
}

# start_container: starts the "container", a process in a new user namespace (root mapped to the
# caller) and network namespace, like `podman unshare` or RootlessKit's child. CONTAINER_PREFIX
# (array, e.g. setpriv ...) runs before unshare. Sets C to its PID.
CONTAINER_PREFIX=()
start_container() {
  "${CONTAINER_PREFIX[@]}" unshare --user --map-root-user --net sleep 600 </dev/null &
  C=$!
  BG_PIDS+=("$C")
  # Ready once unshare has exec'd sleep: both namespaces exist and the uid map is written.
  wait_for "[[ \$(cat /proc/$C/comm) == sleep ]]" 10
  [[ $(readlink "/proc/$C/ns/net") != $(readlink /proc/self/ns/net) ]] ||
    fail "container $C has no network namespace of its own"
}

# in_ns PID CMD...: runs CMD in PID's network namespace and, when it differs from ours, its user
# namespace as that namespace's root (the container's own root, whose capabilities survive exec:
# a preserved but unmapped uid would lose them, e.g. to bind port 80 inside a rootless container).
in_ns() {
  local pid=$1
  shift
  local flags=(--target "$pid" --net)
  if [[ $(readlink "/proc/$pid/ns/user") != $(readlink /proc/self/ns/user) ]]; then
    flags+=(--user)
  fi
  nsenter "${flags[@]}" -- "$@"
}

# start_daemon ARGS...: starts $SLIRPNETD ARGS... in the background with stdin from /dev/null
# and stdout/stderr in $DAEMON_OUT/$DAEMON_ERR; sets DAEMON_PID. The caller's redirections (e.g.
# `start_daemon -r 5 ... 5>file`) are inherited. DAEMON_PREFIX (array, e.g. setpriv ...) is put
# in front. SIGINT/SIGTERM get their default disposition back (bash makes background jobs ignore
# SIGINT), so the daemon sees what it would see when started from a terminal or by Podman.
DAEMON_PREFIX=()
start_daemon() {
  DAEMON_N=$((DAEMON_N + 1))
  DAEMON_OUT=$TMP/daemon$DAEMON_N.out
  DAEMON_ERR=$TMP/daemon$DAEMON_N.err
  local extra=()
  # SLIRPNETD_TEST_SECCOMP=1: every daemon (ours, not the reference) runs under the seccomp filter.
  if [[ ${SLIRPNETD_TEST_SECCOMP:-0} == 1 && $(basename "$SLIRPNETD") == slirpnetd* ]]; then
    extra=(--enable-seccomp)
  fi
  log "daemon$DAEMON_N: ${DAEMON_PREFIX[*]}${DAEMON_PREFIX[*]:+ }$SLIRPNETD ${extra[*]}${extra[*]:+ }$*"
  "${DAEMON_PREFIX[@]}" env --default-signal=INT,TERM,HUP "$SLIRPNETD" "${extra[@]}" "$@" \
    </dev/null >"$DAEMON_OUT" 2>"$DAEMON_ERR" &
  DAEMON_PID=$!
  DAEMON_PIDS+=("$DAEMON_PID")
}

# run_daemon ARGS...: runs $SLIRPNETD in the foreground (bounded: 10 s); sets RUN_STATUS,
# RUN_OUT (stdout) and RUN_ERR (stderr). For command-line checks.
# shellcheck disable=SC2034  # the RUN_* results are for the caller
run_daemon() {
  RUN_STATUS=0
  timeout --kill-after=2 $((10 * TS)) "$SLIRPNETD" "$@" </dev/null >"$TMP/run.out" 2>"$TMP/run.err" || RUN_STATUS=$?
  RUN_OUT=$(cat "$TMP/run.out")
  RUN_ERR=$(cat "$TMP/run.err")
}

# ---------------------------------------------------------------------------------------------
# Network helpers

# wait_for_addr PID DEV ADDR [TIMEOUT]: waits until DEV in PID's netns has ADDR (a substring of
# `ip -o addr show DEV`, e.g. "inet 10.0.2.100/24").
# Fails at once if the daemon exits meanwhile.
wait_for_addr() {
  wait_daemon "in_ns $1 ip -o addr show dev $2 | grep -qF -- '$3'" "${4:-10}"
}

# start_configured [ARGS...]: the daemon with -c ARGS on the container's tap0, waited for until
# tap0 has the default address.
start_configured() {
  start_daemon -c "$@" "$C" tap0
  wait_for_addr "$C" tap0 "inet 10.0.2.100/24"
}

# start_configured_api SOCK [ARGS...]: the same with the API socket at SOCK, waited for too.
start_configured_api() {
  local sock=$1
  shift
  start_configured -a "$sock" "$@"
  wait_daemon "[[ -S $sock ]]" 10
}

wait_for_dev() {  # PID DEV [TIMEOUT]
  wait_daemon "in_ns $1 ip link show dev $2" "${3:-10}"
}

# Waits until ADDR answers ping from PID's netns (each try bounded by 1 s).
wait_for_ping() {  # PID ADDR [TIMEOUT]
  wait_for "in_ns $1 ping -c 1 -W 1 $2" "${3:-10}"
}

# Starts a nettool echo server (tcp-echo or udp-echo) on ADDR PORT, on the host or, with
# NS=PID set, inside PID's netns, and waits until it listens.
start_echo() {  # KIND ADDR PORT
  local ready=$TMP/$1-$3.ready
  rm -f "$ready"
  if [[ -n ${NS:-} ]]; then
    start_bg "$1-$3" in_ns "$NS" "$PYTHON" "$NETTOOL" "$1" "$2" "$3" --ready "$ready" --lifetime 120
  else
    start_bg "$1-$3" "$PYTHON" "$NETTOOL" "$1" "$2" "$3" --ready "$ready" --lifetime 120
  fi
  wait_for "[[ -s $ready ]]" 10
}

# nettool PID|host SUBCOMMAND ARGS...: runs nettool.py in a netns (or on the host); prints its
# output and never fails by itself (callers assert on the "OK"/"ERROR: ..." output).
nettool() {
  local where=$1
  shift
  if [[ $where == host ]]; then
    "$PYTHON" "$NETTOOL" "$@" 2>&1 || true
  else
    in_ns "$where" "$PYTHON" "$NETTOOL" "$@" 2>&1 || true
  fi
}

# api SOCKET JSON: one API request; prints the reply.
api() {
  "$PYTHON" "$NETTOOL" api "$1" "$2" 2>&1 || true
}

# dns_query PID SERVER NAME [ARGS...]: prints "<RCODE> <addr>..." or "ERROR: ...".
dns_query() {
  local pid=$1
  shift
  in_ns "$pid" "$PYTHON" "$DNSD" query "$@" 2>&1 || true
}

# ---------------------------------------------------------------------------------------------
# Cleanup

SANITIZER_RE='ERROR: AddressSanitizer|ERROR: LeakSanitizer|WARNING: ThreadSanitizer|runtime error:|ERROR: ThreadSanitizer'

cleanup() {
  local status=$?
  trap - ERR
  set +e
  if [[ $status -eq 0 && -z $PASSED ]]; then
    echo "FAIL [$TEST_NAME]: the test ended without reaching pass" >&2
    status=1
  fi
  # Daemons first, gracefully, so sanitizer builds get to print their leak/race reports.
  local pid
  for pid in "${DAEMON_PIDS[@]}"; do alive "$pid" && kill -TERM "$pid" 2>/dev/null; done
  for pid in "${DAEMON_PIDS[@]}"; do
    wait_exit "$pid" 5 2>/dev/null || { kill -KILL "$pid"; wait "$pid"; } 2>/dev/null
  done
  for pid in "${BG_PIDS[@]}"; do
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null  # reap quietly (no "Killed" job message)
  done
  local i
  for ((i = 1; i <= DAEMON_N; i++)); do
    if grep -Eq "$SANITIZER_RE" "$TMP/daemon$i.err" 2>/dev/null; then
      echo "FAIL [$TEST_NAME]: sanitizer report in daemon$i's stderr" >&2
      status=1
    fi
  done
  if [[ $status -ne 0 && $status -ne $SKIP_STATUS ]]; then
    for ((i = 1; i <= DAEMON_N; i++)); do
      echo "---- daemon$i stdout ----" >&2
      head -c 20000 "$TMP/daemon$i.out" >&2
      echo "---- daemon$i stderr ----" >&2
      head -c 20000 "$TMP/daemon$i.err" >&2
    done
    echo "---- dnsd log ----" >&2
    cat "$TMP/dnsd.log" >&2 2>/dev/null
  fi
  cd /
  umount -l "$TMP" 2>/dev/null
  rmdir "$TMP" 2>/dev/null
  exit "$status"
}

# ---------------------------------------------------------------------------------------------
# Set-up of the private host (we are now pid 1 of fresh namespaces).

ip link set lo up
mount --make-rprivate /
TMP=$(mktemp -d "${TMPDIR:-/tmp}/slirpnetd-$TEST_NAME.XXXXXX")
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# Sticky and world-writable: commands run inside a rootless container (as its root, i.e. uid
# 65534 on the host) write their output files here too.
mount -t tmpfs -o mode=1777,size=64m slirpnetd-test "$TMP"
cd "$TMP"

echo "nameserver 127.0.0.1" >"$TMP/resolv.conf"
chmod 0644 "$TMP/resolv.conf"
mount --bind "$TMP/resolv.conf" /etc/resolv.conf

"$PYTHON" "$DNSD" serve --addr 127.0.0.1 --port 53 --log "$TMP/dnsd.log" --ready "$TMP/dnsd.ready" \
  --lifetime 300 </dev/null >"$TMP/dnsd.out" 2>&1 &
BG_PIDS+=("$!")
wait_for "[[ -s $TMP/dnsd.ready ]]" 10
