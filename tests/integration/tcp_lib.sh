# shellcheck shell=bash
# tests/integration/tcp_lib.sh: helpers for the TCP tests (t_tcp_*.sh), sourced after lib.sh.
#
# Streams are nettool.py's `tcp-stream`: a seeded deterministic byte sequence that the sender
# hashes as it writes and the receiver as it reads; both print "OK sent|received N sha256=HEX".
# Nothing is stored: a gigabyte costs two sha256 passes, not a gigabyte of tmpfs.
#
# SLIRPNETD_LIBSLIRP=bundled|system names the libslirp the daemon under test was linked with
# (CMake's -DSLIRPNETD_LIBSLIRP; default bundled). The system library (Debian's 4.7) negotiates
# no TCP window scaling; the bundled one, with our patches, does. Tests assert what each should do.

SLIRPNETD_LIBSLIRP=${SLIRPNETD_LIBSLIRP:-bundled}
case $SLIRPNETD_LIBSLIRP in
  bundled | system) ;;
  *) fail "SLIRPNETD_LIBSLIRP must be bundled or system, not '$SLIRPNETD_LIBSLIRP'" ;;
esac
command -v jq >/dev/null || fail "jq is not installed (run scripts/deps.sh)"

# where_run WHERE CMD...: CMD on the host (WHERE=host) or in container PID WHERE's netns.
where_run() {
  local where=$1
  shift
  if [[ $where == host ]]; then "$@"; else in_ns "$where" "$@"; fi
}

# stream_listen NAME WHERE ROLE ADDR PORT [ARGS...]: a tcp-stream that accepts one connection
# (ROLE send or recv) on ADDR PORT on the host or in a container; waits until it listens. Output
# in $TMP/NAME.log; sets STREAM_PID.
# shellcheck disable=SC2034  # STREAM_PID is for the caller
stream_listen() {
  local name=$1 where=$2 role=$3 addr=$4 port=$5
  shift 5
  local ready=$TMP/$name.ready
  rm -f "$ready"
  start_bg "$name" where_run "$where" "$PYTHON" "$NETTOOL" tcp-stream "$role" "$addr" "$port" \
    --listen --ready "$ready" --timeout "$STREAM_TIMEOUT" "$@"
  STREAM_PID=$BG_PID
  wait_for "[[ -s $ready ]]" 10 "$STREAM_PID"
}

# stream_connect NAME WHERE ROLE ADDR PORT [ARGS...]: a tcp-stream that connects; sets STREAM_PID.
# shellcheck disable=SC2034  # STREAM_PID is for the caller
stream_connect() {
  local name=$1 where=$2 role=$3 addr=$4 port=$5
  shift 5
  start_bg "$name" where_run "$where" "$PYTHON" "$NETTOOL" tcp-stream "$role" "$addr" "$port" \
    --timeout "$STREAM_TIMEOUT" "$@"
  STREAM_PID=$BG_PID
}

# Seconds a stream may take at most (before $TS); tests may raise it before starting streams.
STREAM_TIMEOUT=${STREAM_TIMEOUT:-120}

# stream_check WHAT BYTES SENDER_NAME SENDER_PID RECEIVER_NAME RECEIVER_PID: waits for both ends
# (bounded by STREAM_TIMEOUT) and fails unless both exited 0, the receiver got BYTES bytes and
# both hashes match.
stream_check() {
  local what=$1 bytes=$2 sname=$3 spid=$4 rname=$5 rpid=$6
  expect_exit "$rpid" "$((STREAM_TIMEOUT + 10))" "$what: receiver"
  local rstatus=$EXIT_STATUS
  expect_exit "$spid" 15 "$what: sender"
  local sstatus=$EXIT_STATUS
  local sent received
  sent=$(tail -n 1 "$TMP/$sname.log")
  received=$(tail -n 1 "$TMP/$rname.log")
  [[ $sstatus == 0 && $rstatus == 0 ]] ||
    fail "$what: sender exited $sstatus ('$sent'), receiver exited $rstatus ('$received')"
  assert_match "$sent" "^OK sent $bytes sha256=[0-9a-f]{64}$" "$what: sender"
  assert_eq "OK received $bytes sha256=${sent##*sha256=}" "$received" "$what: receiver's bytes and sha256"
}

# add_fwd SOCK PROTO HOST_ADDR HOST_PORT GUEST_PORT: a libslirp port forward through the API.
add_fwd() {
  local reply
  reply=$(api "$1" "{\"execute\":\"add_hostfwd\",\"arguments\":{\"proto\":\"$2\",\"host_addr\":\"$3\",\"host_port\":$4,\"guest_addr\":\"\",\"guest_port\":$5}}")
  [[ $(jq -r '.return.id' <<<"$reply") =~ ^[0-9]+$ ]] || fail "add_hostfwd $*: $reply"
}

# cpu_ticks PID: the process's user+system CPU time so far, all threads, in clock ticks.
cpu_ticks() {
  local stat
  stat=$(cat "/proc/$1/stat")
  stat=${stat##*) }
  # After "comm)": state is field 3 of the full line, utime 14, stime 15.
  local f
  read -r -a f <<<"$stat"
  echo $((f[11] + f[12]))
}
# shellcheck disable=SC2034  # for the tests
CLK_TCK=$(getconf CLK_TCK)

# tcp_info WHERE FILTER...: `ss -tinH` lines (socket line and info line joined) of the established
# TCP sockets matching the ss FILTER, on the host or in a container.
tcp_info() {
  local where=$1
  shift
  where_run "$where" timeout 5 ss -tinH state established "$@" | paste -d ' ' - -
}

# sample_tcp WHERE WATCH_PID OUT FILTER...: appends tcp_info lines (see above) to OUT every ~20 ms
# while WATCH_PID runs (at most 60 s before $TS).
sample_tcp() {
  local where=$1 watch=$2 out=$3
  shift 3
  local deadline=$((SECONDS + 60 * TS))
  while alive "$watch" && ((SECONDS < deadline)); do
    tcp_info "$where" "$@" >>"$out" 2>/dev/null || true
    sleep 0.02
  done
}

# max_field FILE NAME: the largest value of NAME:<number> in FILE (0 when absent).
max_field() {
  { grep -oE "(^|[ ])$2:[0-9]+" "$1" || echo " $2:0"; } | cut -d: -f2 | sort -n | tail -n 1
}

STREAM_SEED=0
# stream_both_ways WHAT BYTES UP_LISTEN UP_CONNECT DOWN_LISTEN DOWN_CONNECT: two streams of BYTES
# at once, "up" from the container to the host and "down" from the host to the container, each
# checked with stream_check. Each *_LISTEN / *_CONNECT is "WHERE ADDR PORT" for the end that
# listens (the host for the gateway, the container for a port forward) and the end that connects.
# Every stream gets a seed of its own. Sets UP_SECS and BOTH_SECS: seconds until the up stream,
# and both, had been checked.
# shellcheck disable=SC2034  # UP_SECS, BOTH_SECS are for the caller
stream_both_ways() {
  local what=$1 bytes=$2 ul uc dl dc
  read -r -a ul <<<"$3"
  read -r -a uc <<<"$4"
  read -r -a dl <<<"$5"
  read -r -a dc <<<"$6"
  local t0=$EPOCHREALTIME i=$((STREAM_SEED + 1))
  STREAM_SEED=$((STREAM_SEED + 2))
  # up: the container sends; down: the host sends. The listening ends start first.
  local ul_role=recv uc_role=send dl_role=send dc_role=recv
  [[ ${ul[0]} == host ]] || { ul_role=send uc_role=recv; }
  [[ ${dl[0]} == host ]] || { dl_role=recv dc_role=send; }
  local ua=(--bytes "$bytes" --seed "$i") da=(--bytes "$bytes" --seed "$((i + 1))")
  stream_listen "up$i-$ul_role" "${ul[0]}" "$ul_role" "${ul[@]:1}" "${ua[@]}"
  local ul_pid=$STREAM_PID
  stream_listen "down$i-$dl_role" "${dl[0]}" "$dl_role" "${dl[@]:1}" "${da[@]}"
  local dl_pid=$STREAM_PID
  stream_connect "up$i-$uc_role" "${uc[0]}" "$uc_role" "${uc[@]:1}" "${ua[@]}"
  local uc_pid=$STREAM_PID
  stream_connect "down$i-$dc_role" "${dc[0]}" "$dc_role" "${dc[@]:1}" "${da[@]}"
  local dc_pid=$STREAM_PID
  local up_pids=("$uc_pid" "$ul_pid") down_pids=("$dl_pid" "$dc_pid")
  [[ $uc_role == send ]] || up_pids=("$ul_pid" "$uc_pid")
  [[ $dl_role == send ]] || down_pids=("$dc_pid" "$dl_pid")
  stream_check "$what, container->host" "$bytes" "up$i-send" "${up_pids[0]}" "up$i-recv" "${up_pids[1]}"
  UP_SECS=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
  stream_check "$what, host->container" "$bytes" "down$i-send" "${down_pids[0]}" "down$i-recv" "${down_pids[1]}"
  BOTH_SECS=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
}
