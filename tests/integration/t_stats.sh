#!/usr/bin/env bash
# `slirpnetd stats` (issue 14) against a daemon moving real traffic, paced by iperf3 at different
# rates per path so a swapped or misattributed counter shows:
#   up:     container -> host gateway, 120 Mbit/s  (TAP read, slirp_input)
#   down:   host -> container (iperf3 -R), 60 Mbit/s  (send_packet, TAP write)
#   splice: host -> container through a splice forward, 40 Mbit/s  (the splice forwarder)
# all at once for 4 s, while `slirpnetd stats --json --interval 0.5` samples from before they
# start until after they end. Checked:
#   - the bytes each stage moved over the run (the sum of bytes_per_s x interval_s over the
#     samples) agree with the bytes iperf3 moved on that path within 10% (TAP bytes also carry
#     headers, the other stream's ACKs and iperf3's control connection: a few percent);
#   - every sample wholly inside the transfers' steady part (from 1 s after their start to 0.5 s
#     before their end) shows a rate within 25% of what iperf3 measured on that path;
#   - the rx/tx ring hand-off latencies are counted, with p50 <= p99 <= max;
#   - the table (no --json) has a row per stage;
#   - errors: no socket file, a stale socket, a socket that never answers: a message naming the
#     socket on stderr and exit 1.
# Time: ~10 s (+3 s for the silent socket's timeout).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is not installed (run scripts/deps.sh)"
command -v iperf3 >/dev/null || fail "iperf3 is not installed (run scripts/deps.sh)"

stats() {  # ARGS...: runs `slirpnetd stats ARGS`, bounded; sets ST_STATUS, ST_OUT, ST_ERR
  ST_STATUS=0
  timeout --kill-after=2 $((30 * TS)) "$SLIRPNETD" stats "$@" </dev/null >"$TMP/stats.out" 2>"$TMP/stats.err" || ST_STATUS=$?
  ST_OUT=$(cat "$TMP/stats.out")
  ST_ERR=$(cat "$TMP/stats.err")
}

# --- Errors -----------------------------------------------------------------------------------
stats --api-socket "$TMP/none.sock" --count 1
assert_eq 1 "$ST_STATUS" "exit status without a daemon"
assert_eq "slirpnetd stats: cannot connect to $TMP/none.sock: No such file or directory (is slirpnetd running with --api-socket $TMP/none.sock?)" \
  "$ST_ERR" "message without a daemon"
assert_eq "" "$ST_OUT" "stdout without a daemon"

# A socket file nobody listens on (a daemon killed with SIGKILL leaves one).
"$PYTHON" -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$TMP/stale.sock"
stats -a "$TMP/stale.sock"
assert_eq 1 "$ST_STATUS" "exit status with a stale socket"
assert_contains "$ST_ERR" "cannot connect to $TMP/stale.sock: Connection refused" "message with a stale socket"

# A listener that never answers.
start_bg silent "$PYTHON" -c 'import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(4); open(sys.argv[2],"w").write("ready\n"); time.sleep(60)' \
  "$TMP/silent.sock" "$TMP/silent.ready"
wait_for "[[ -s $TMP/silent.ready ]]" 10
stats -a "$TMP/silent.sock"
assert_eq 1 "$ST_STATUS" "exit status with a silent socket"
assert_eq "slirpnetd stats: no reply from $TMP/silent.sock within 3000 ms" "$ST_ERR" "message with a silent socket"

# --- Rates under traffic ----------------------------------------------------------------------
start_bg iperf-up-server iperf3 -s -B 127.0.0.1 -p 5201 -1
start_bg iperf-down-server iperf3 -s -B 127.0.0.1 -p 5202 -1
start_container
start_bg iperf-splice-server in_ns "$C" iperf3 -s -p 5203 -1
sock=$TMP/api.sock
start_configured_api "$sock" --splice
wait_for "ss -Hltn 'sport = :5201' | grep -q . && ss -Hltn 'sport = :5202' | grep -q . && in_ns $C ss -Hltn 'sport = :5203' | grep -q ." 10
reply=$(api "$sock" '{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"127.0.0.1","host_port":15203,"guest_port":5203,"mode":"splice"}}')
[[ $(jq -r '.return.id' <<<"$reply") =~ ^[0-9]+$ ]] || fail "add_hostfwd: $reply"

secs=4
# Sampling starts before the transfers (its first get_stats has been answered) and ends well
# after them: 10 s of samples, so the sums cover all of their bytes.
start_bg sampler "$SLIRPNETD" stats -a "$sock" --json --interval 0.5 --count 20
sampler=$BG_PID
wait_for "grep -qF '\"get_stats\"' $DAEMON_ERR" 10 "$sampler"
t0=$(date +%s.%N)
start_bg up in_ns "$C" timeout $((30 * TS)) iperf3 -c 10.0.2.2 -p 5201 -b 120M -t $secs -J
up=$BG_PID
start_bg down in_ns "$C" timeout $((30 * TS)) iperf3 -c 10.0.2.2 -p 5202 -b 60M -t $secs -R -J
down=$BG_PID
start_bg splice timeout $((30 * TS)) iperf3 -c 127.0.0.1 -p 15203 -b 40M -t $secs -J
splice=$BG_PID
for p in up down splice; do
  expect_exit "${!p}" $((secs + 20)) "iperf3 $p"
  assert_eq 0 "$EXIT_STATUS" "iperf3 $p status ($(tail -5 "$TMP/$p.log"))"
done
expect_exit "$sampler" 20 "slirpnetd stats --json"
assert_eq 0 "$EXIT_STATUS" "slirpnetd stats --json status ($(tail -3 "$TMP/sampler.log"))"
samples=$TMP/sampler.log
assert_eq 20 "$(jq -s length "$samples")" "samples (one JSON object per line)"

# What iperf3 moved (bytes) and its rate (bytes/s) on each path, as the receiver counted them.
moved() { jq '.end.sum_received.bytes' "$TMP/$1.log"; }
rate() { jq '.end.sum_received.bits_per_second / 8' "$TMP/$1.log"; }
# What stats says a stage moved over all samples: sum of FIELD (a jq path) x interval_s.
total() { jq -s "map($1 * .interval_s) | add" "$samples"; }

# check PATH FIELD WHAT: totals within 10%, steady-state samples within 25% of iperf3's rate.
check() {
  local path=$1 field=$2 what=$3 ours theirs r
  ours=$(total "$field")
  theirs=$(moved "$path")
  r=$(rate "$path")
  log "$what: stats total $ours bytes, iperf3 moved $theirs bytes at $r B/s"
  awk -v a="$ours" -v b="$theirs" 'BEGIN { exit !(b > 1000000 && a >= 0.9 * b && a <= 1.1 * b) }' ||
    fail "$what: slirpnetd stats counted $ours bytes, iperf3 moved $theirs (more than 10% apart)"
  local steady
  steady=$(jq -c --argjson t0 "$t0" --argjson secs "$secs" \
    "select(.time - .interval_s >= \$t0 + 1 and .time <= \$t0 + \$secs - 0.5) | $field" "$samples")
  [[ -n $steady ]] || fail "$what: no sample inside the steady part of the transfer"
  log "$what: steady samples (bytes/s): $(tr '\n' ' ' <<<"$steady")"
  local s
  for s in $steady; do
    awk -v a="$s" -v b="$r" 'BEGIN { exit !(a >= 0.75 * b && a <= 1.25 * b) }' ||
      fail "$what: a sample shows $s bytes/s, iperf3 measured $r (more than 25% apart)"
  done
}
check up .tap_read.bytes_per_s "container -> host, TAP read"
check up .slirp_input.bytes_per_s "container -> host, slirp_input"
check down .send_packet.bytes_per_s "host -> container, send_packet"
check down .tap_write.bytes_per_s "host -> container, TAP write"
check splice .splice.bytes_in_per_s "host -> container, splice forwarder"

# Frames were counted too, and the hand-offs' latencies.
for stage in tap_read slirp_input send_packet tap_write; do
  n=$(jq -s "map(.$stage.frames_per_s * .interval_s) | add | floor" "$samples")
  ((n > 100)) || fail "$stage: $n frames over the run"
done
for ring in rx_ring tx_ring; do
  n=$(jq -s "map(.$ring.latency_ns.count) | add" "$samples")
  ((n > 100)) || fail "$ring: $n hand-offs timed over the run"
  bad=$(jq -c "select(.$ring.latency_ns.count > 0 and (.$ring.latency_ns.p50_le > .$ring.latency_ns.p99_le or .$ring.latency_ns.p99_le > .$ring.latency_ns.max_le or .$ring.latency_ns.p50_le == 0 and .$ring.latency_ns.max_le == 0)) | .$ring" "$samples")
  assert_eq "" "$bad" "$ring latency percentiles in order"
done

# The table: a header and a row per stage.
stats -a "$sock" --interval 0.2 --count 2
assert_eq 0 "$ST_STATUS" "table status ($ST_ERR)"
assert_eq 2 "$(grep -c '^STAGE ' <<<"$ST_OUT")" "table headers ($ST_OUT)"
for stage in tap_read rx_ring slirp_input send_packet tx_ring tap_write splice; do
  assert_eq 2 "$(grep -c "^$stage " <<<"$ST_OUT")" "table rows for $stage ($ST_OUT)"
done

# The daemon going away mid-run ends stats with a message and status 1.
start_bg watcher "$SLIRPNETD" stats -a "$sock" --interval 0.2
watcher=$BG_PID
wait_for "grep -q '^STAGE ' $TMP/watcher.log" 10
kill -TERM "$DAEMON_PID"
expect_exit "$DAEMON_PID" 10 "daemon after SIGTERM"
expect_exit "$watcher" 10 "slirpnetd stats after the daemon stopped"
assert_eq 1 "$EXIT_STATUS" "stats status after the daemon stopped"
assert_contains "$(cat "$TMP/watcher.log")" "slirpnetd stats: cannot connect to $sock" "stats message after the daemon stopped"
pass
