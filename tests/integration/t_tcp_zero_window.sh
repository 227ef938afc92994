#!/usr/bin/env bash
# Zero window and persist (issue 11): a receiver stops reading in the middle of a stream for several
# seconds, then resumes.
#   host->container: the receiving app in the container stops; the container's kernel advertises a
#     zero window to libslirp, which holds the rest in its send buffer and must probe (persist)
#     without spinning; when the app reads again the stream resumes.
#   container->host: the host's receiving app stops; libslirp's socket buffer towards the host fills
#     and it must advertise a zero window to the container (the container's kernel then probes it).
# Each direction is run through the gateway (the container connects to 10.0.2.2) and through a
# libslirp port forward (add_hostfwd, the host connects to 127.0.0.1:HOSTPORT), at MTU 65520.
# In every case, once the stall has settled (the receiver's Recv-Q and the sender's Send-Q both
# stopped moving and are non-zero), for 6 s (longer than libslirp's shortest persist timeout, 5 s):
#   - the stream makes no progress (the queues move by less than 64 KiB: zero-window probes may
#     carry a few bytes): the stall is real;
#   - host->container: libslirp probes the closed window (persist): the container's socket
#     receives at least one segment;
#   - the daemon's CPU time (/proc/PID/stat utime+stime, all threads) grows by less than
#     SLIRPNETD_STALL_CPU_PCT (default 20) % of one CPU: no busy loop while the window is closed;
#   - container->host: ss in the container shows no snd_wnd (ss omits it when 0: libslirp
#     advertises a zero window) and rwnd_limited time;
# and afterwards every byte arrives (sha256 of SLIRPNETD_STALL_BYTES, default 64 MiB).
# Expected the same from the system and the bundled libslirp. With the system libslirp 4.7 the
# daemon used 0-1 clock ticks in the 6 s of each stall (0 %, logged as "daemon CPU"), libslirp sent
# one probe per stall, and at most 3 bytes moved; slirp4netns 1.2.0 behaves the same. ~45 s.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=tests/integration/tcp_lib.sh
source "$ITEST_DIR/tcp_lib.sh"

BYTES=${SLIRPNETD_STALL_BYTES:-67108864}
MAX_PCT=${SLIRPNETD_STALL_CPU_PCT:-20}
MEASURE=6  # seconds of CPU measurement: longer than libslirp's first persist timeout (5 s)
SETTLE=$((3 * TS))            # at most this long for the queues to stop moving
PAUSE=$((MEASURE + SETTLE + 5))  # the longest pause: the test ends it once it has measured
# shellcheck disable=SC2034  # read by tcp_lib.sh
STREAM_TIMEOUT=$((60 + PAUSE))
log "libslirp: $SLIRPNETD_LIBSLIRP"

# queues WHERE FILTER...: "RECVQ SENDQ" of the one established socket matching FILTER.
queues() {
  local line
  line=$(tcp_info "$@" | head -n 1)
  [[ -n $line ]] || { echo "none"; return; }
  awk '{ print $1, $2 }' <<<"$line"
}

# field INFO NAME: the number after NAME: in an ss info line (0 when absent).
field() {
  local v
  v=$(grep -oE "(^|[ ])$2:[0-9]+" <<<"$1" | head -n 1 | cut -d: -f2) || true
  echo "${v:-0}"
}

N=0
# stall WHAT: runs one stalled stream. Set before calling: SEND_SIDE / RECV_SIDE (host or $C), how
# to start each end (LISTEN=recv|send: which end listens; L_ADDR L_PORT; C_ADDR C_PORT), and the
# ss filters of the receiving and the sending socket (RECV_FILTER, SEND_FILTER, each an array,
# run where that socket lives).
stall() {
  local what=$1
  N=$((N + 1))
  local paused=$TMP/paused$N
  local rargs=(--pause-after $((BYTES / 4)) --pause "$PAUSE" --paused "$paused" --resume "$TMP/resume$N")
  local sargs=(--bytes "$BYTES" --seed "$N")
  local spid rpid
  if [[ $LISTEN == recv ]]; then
    stream_listen "recv$N" "$RECV_SIDE" recv "$L_ADDR" "$L_PORT" "${rargs[@]}"
    rpid=$STREAM_PID
    stream_connect "send$N" "$SEND_SIDE" send "$C_ADDR" "$C_PORT" "${sargs[@]}"
    spid=$STREAM_PID
  else
    stream_listen "send$N" "$SEND_SIDE" send "$L_ADDR" "$L_PORT" "${sargs[@]}"
    spid=$STREAM_PID
    stream_connect "recv$N" "$RECV_SIDE" recv "$C_ADDR" "$C_PORT" "${rargs[@]}"
    rpid=$STREAM_PID
  fi
  wait_for "[[ -s $paused ]]" 20 "$rpid"

  # Settled: two samples 0.5 s apart agree, and both queues hold data.
  local r0 s0 r1 s1 deadline=$((SECONDS + SETTLE))
  while :; do
    r0=$(queues "$RECV_SIDE" "${RECV_FILTER[@]}") s0=$(queues "$SEND_SIDE" "${SEND_FILTER[@]}")
    sleep 0.5
    r1=$(queues "$RECV_SIDE" "${RECV_FILTER[@]}") s1=$(queues "$SEND_SIDE" "${SEND_FILTER[@]}")
    [[ $r0 == "$r1" && $s0 == "$s1" && $r1 != none && $s1 != none && ${r1%% *} != 0 && ${s1##* } != 0 ]] && break
    ((SECONDS < deadline)) || fail "$what: the stall did not settle in ${SETTLE}s (receiver Recv-Q/Send-Q '$r0' -> '$r1', sender '$s0' -> '$s1')"
  done

  local c0 c1 t0 t1 i0 i1
  i0=$(tcp_info "$RECV_SIDE" "${RECV_FILTER[@]}")
  c0=$(cpu_ticks "$DAEMON_PID") t0=$EPOCHREALTIME
  sleep "$MEASURE"
  c1=$(cpu_ticks "$DAEMON_PID") t1=$EPOCHREALTIME
  i1=$(tcp_info "$RECV_SIDE" "${RECV_FILTER[@]}")
  local r2 s2 sender_info
  r2=$(queues "$RECV_SIDE" "${RECV_FILTER[@]}") s2=$(queues "$SEND_SIDE" "${SEND_FILTER[@]}")
  sender_info=$(tcp_info "$SEND_SIDE" "${SEND_FILTER[@]}")
  [[ -s $TMP/recv$N.log ]] && fail "$what: the receiver ended during its pause: $(cat "$TMP/recv$N.log")"
  local pct moved probes
  pct=$(awk -v c=$((c1 - c0)) -v hz="$CLK_TCK" -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", c / hz / (b - a) * 100 + 0.5 }')
  # Zero-window probes may carry a byte or a few into the last bytes of a window scaled down to 0.
  moved=$(((${r2%% *} - ${r1%% *}) + (${s1##* } - ${s2##* })))
  moved=${moved#-}
  probes=$(($(field "$i1" segs_in) - $(field "$i0" segs_in)))
  log "$what: stalled with receiver Recv-Q ${r1%% *}, sender Send-Q ${s1##* }; in ${MEASURE}s: daemon CPU $pct % of one CPU ($((c1 - c0)) ticks), $moved bytes moved, $probes segments into the receiver"
  [[ $r2 != none && $s2 != none ]] || fail "$what: a socket went away during the stall (receiver '$r2', sender '$s2')"
  ((moved < 65536)) ||
    fail "$what: the stream moved while the receiver was not reading (receiver '$r1' -> '$r2', sender '$s1' -> '$s2')"
  ((pct < MAX_PCT)) || fail "$what: the daemon used $pct % of a CPU while the window was closed (limit $MAX_PCT %)"
  if [[ $SEND_SIDE == host ]]; then
    # libslirp sends into the container's closed window: it must probe it (persist), at least
    # every 5 s at first.
    ((probes >= 1)) || fail "$what: libslirp sent no window probe in ${MEASURE}s of zero window"
  else
    # The container sends: the window it sees is libslirp's, and it must be closed (ss prints
    # snd_wnd only when it is not 0).
    assert_not_contains "$sender_info" " snd_wnd:" "$what: the window libslirp advertises to the container"
    assert_contains "$sender_info" " rwnd_limited:" "$what: the container's sender state"
  fi
  touch "$TMP/resume$N"
  stream_check "$what" "$BYTES" "send$N" "$spid" "recv$N" "$rpid"
}

start_container
sock=$TMP/api.sock
start_configured_api "$sock" --mtu 65520
add_fwd "$sock" tcp 127.0.0.1 8080 80
add_fwd "$sock" tcp 127.0.0.1 8081 81

# host->container through the gateway: the host listens and sends, the container connects and stalls.
SEND_SIDE=host RECV_SIDE=$C LISTEN=send L_ADDR=127.0.0.1 L_PORT=7000 C_ADDR=10.0.2.2 C_PORT=7000
RECV_FILTER=(dst 10.0.2.2:7000) SEND_FILTER=(sport "=" :7000)
stall "host->container, gateway"
# container->host through the gateway: the host listens and stalls.
SEND_SIDE=$C RECV_SIDE=host LISTEN=recv L_ADDR=127.0.0.1 L_PORT=7001 C_ADDR=10.0.2.2 C_PORT=7001
RECV_FILTER=(sport "=" :7001) SEND_FILTER=(dst 10.0.2.2:7001)
stall "container->host, gateway"
# host->container through the forward: the container listens on 80 and stalls.
SEND_SIDE=host RECV_SIDE=$C LISTEN=recv L_ADDR=0.0.0.0 L_PORT=80 C_ADDR=127.0.0.1 C_PORT=8080
RECV_FILTER=(sport "=" :80) SEND_FILTER=(dst 127.0.0.1:8080)
stall "host->container, forward"
# container->host through the forward: the container listens on 81 and sends, the host stalls.
SEND_SIDE=$C RECV_SIDE=host LISTEN=send L_ADDR=0.0.0.0 L_PORT=81 C_ADDR=127.0.0.1 C_PORT=8081
RECV_FILTER=(dst 127.0.0.1:8081) SEND_FILTER=(sport "=" :81)
stall "container->host, forward"

alive "$DAEMON_PID" || fail "daemon died"
pass
