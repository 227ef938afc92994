#!/usr/bin/env bash
# --enable-seccomp: the filter is loaded before the daemon starts its first thread, so that no
# frame and no API request is ever handled unfiltered. Checked on the daemon's own syscalls,
# under strace: from main() on (marked by the raw clone() of the TAP child), seccomp() comes
# before any clone3(), which is how glibc creates threads. (Sanitizer runtimes may start a thread
# before main(): it is not counted.)
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

command -v strace >/dev/null || skip "strace is not installed (scripts/deps.sh)"
start_container
trace=$TMP/strace.log
DAEMON_PREFIX=(strace -f -qq -o "$trace" -e trace=clone,clone3,seccomp)
start_configured_api "$TMP/api.sock" --enable-seccomp --enable-sandbox
assert_contains "$(api "$TMP/api.sock" '{"execute":"list_hostfwd"}')" '"entries"' "API answer under seccomp"
main=$(awk '/clone\(.*SIGCHLD/ {print $1; exit}' "$trace")
[[ -n $main ]] || fail "no clone() of the TAP child in $trace"
order=$(awk -v main="$main" '
  $1 != main { next }
  /clone\(.*SIGCHLD/ { in_main = 1 }
  in_main && /seccomp\(SECCOMP_SET_MODE_FILTER/ { print "seccomp"; exit }
  in_main && /clone3\(/ { print "thread"; exit }' "$trace")
log "strace (daemon pid $main): $(grep -c . "$trace") lines; first after main(): $order"
assert_eq seccomp "$order" "first of seccomp() and a thread's clone3() after main() starts"
pass
