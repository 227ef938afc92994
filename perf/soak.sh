#!/usr/bin/env bash
# perf/soak.sh: a bounded soak test of the daemon (default 10 minutes).
#
#   perf/soak.sh [--minutes N]          (root; hermetic: tests/integration/lib.sh's namespaces)
#
# For N minutes, at the same time:
#   - iperf3 both ways (namespace -> host and host -> namespace with -R, 2 streams each, 150 Mbit/s
#     per stream, 20 s runs back to back) at MTU 65520;
#   - short connections: perf/tools/nettool `crr` from the namespace to the gateway (connect, 1 byte
#     echo, close), 5 s bursts with 2 s pauses: thousands of connections;
#   - forward churn (perf/lib/soak_api.py): add_hostfwd/remove_hostfwd every 2-6 ms through the API
#     (pool of up to 40), and every 5 s list_hostfwd must match and every listed TCP forward must
#     echo 1 KiB through the guest's echo server;
#   - every 5 s: the daemon's RSS (/proc/PID/status VmRSS), open fds (/proc/PID/fd), threads.
# Passes when the daemon never dies, nothing fails, the last quarter's mean RSS is at most 1.2x the
# first quarter's (after a warm-up of 10% of the run, at most 60 s) + 8 MiB, the last quarter's mean fd count at most 1.2x the first's + 16, and after
# the load the fd count comes back to within 4 of its idle baseline. Writes a summary to stdout and
# perf/results/soak-latest.txt (raw samples: perf/results/soak-latest.samples).
# The daemon is $SLIRPNETD (default build/slirpnetd).
set -euo pipefail

PERF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$PERF_DIR/.." && pwd)
minutes=${SOAK_MINUTES:-10}  # lib.sh re-executes this script without its arguments
while (($#)); do
  case $1 in
    --minutes) minutes=$2; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
[[ $minutes =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "soak.sh: --minutes needs a number" >&2; exit 2; }
DURATION=$(awk -v m="$minutes" 'BEGIN { print int(m * 60) }')
((DURATION >= 30)) || { echo "soak.sh: at least 0.5 minutes" >&2; exit 2; }
TOOL=$PERF_DIR/.build/nettool

if [[ -z ${SLIRPNETD_HERMETIC:-} ]]; then  # outside the namespaces: prepare, then lib.sh re-executes us
  for cmd in iperf3 jq g++; do
    command -v $cmd >/dev/null || { echo "soak.sh: missing $cmd (apt-get install iperf3 jq g++)" >&2; exit 1; }
  done
  if [[ -z ${SLIRPNETD:-} ]]; then
    SLIRPNETD=$REPO/build/slirpnetd
  fi
  export SLIRPNETD
  if [[ ! -x $TOOL || $PERF_DIR/tools/nettool.cpp -nt $TOOL ]]; then
    mkdir -p "$PERF_DIR/.build"
    g++ -O2 -std=c++17 -Wall -Wextra -Wshadow -o "$TOOL.tmp" "$PERF_DIR/tools/nettool.cpp"
    mv "$TOOL.tmp" "$TOOL"
  fi
  export SLIRPNETD_TEST_TIMEOUT=$((DURATION + 300)) SOAK_MINUTES=$minutes
fi
# shellcheck source=tests/integration/lib.sh
source "$REPO/tests/integration/lib.sh"

# ---- set-up --------------------------------------------------------------------------------------
RESULTS=$PERF_DIR/results
mkdir -p "$RESULTS"
# Thousands of short connections: reuse TIME_WAIT ports; keep ephemeral ports off the forwards'.
sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="32768 65000"
ulimit -n 65536 2>/dev/null || true

start_bg iperf3-up-server iperf3 -s -B 127.0.0.1 -p 5201
start_bg iperf3-down-server iperf3 -s -B 127.0.0.1 -p 5202
start_bg crr-server "$TOOL" serve 127.0.0.1 5300 --max-seconds $((DURATION + 120))
# lib.sh's start_container lives 600 s: the container's init here must outlive the soak.
unshare --user --map-root-user --net sleep $((DURATION + 600)) </dev/null &
C=$!
BG_PIDS+=("$C")
wait_for "[[ \$(cat /proc/$C/comm) == sleep ]]" 10
in_ns "$C" sysctl -qw net.ipv4.tcp_tw_reuse=1 2>/dev/null || true
sock=$TMP/api.sock
start_daemon -c --mtu 65520 -a "$sock" "$C" tap0
wait_for_addr "$C" tap0 "inet 10.0.2.100/24"
wait_daemon "[[ -S $sock ]]" 10
start_bg guest-echo in_ns "$C" "$TOOL" serve 10.0.2.100 8080 --max-seconds $((DURATION + 120))
wait_for "in_ns $C ss -Hltn 'sport = :8080' | grep -q LISTEN" 10
wait_for "nettool $C tcp-check 10.0.2.2 5300 --bytes 1 | grep -q OK" 10

daemon_fds() { find "/proc/$DAEMON_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
sleep 2
FD_BASELINE=$(daemon_fds)
RSS_BASELINE=$(awk '/^VmRSS/ {print $2}' "/proc/$DAEMON_PID/status")

# ---- load ------------------------------------------------------------------------------------------
START=$SECONDS
END=$((START + DURATION))

iperf_loop() {  # NAME PORT [-R]
  set +e
  local name=$1 port=$2 n=0
  shift 2
  while ((SECONDS + 22 < END)); do
    n=$((n + 1))
    in_ns "$C" timeout 60 iperf3 -c 10.0.2.2 -p "$port" -t 20 -P 2 -b 150M -J "$@" >"$TMP/$name-$n.json" 2>&1
    echo "$n $?" >>"$TMP/$name.status"
    sleep 1
  done
}
crr_loop() {
  set +e
  while ((SECONDS + 6 < END)); do
    in_ns "$C" "$TOOL" crr 10.0.2.2 5300 5 >>"$TMP/crr.jsonl" 2>>"$TMP/crr.err"
    sleep 2
  done
}
loops=()
iperf_loop up 5201 >/dev/null 2>&1 &
loops+=("$!")
iperf_loop down 5202 -R >/dev/null 2>&1 &
loops+=("$!")
crr_loop >/dev/null 2>&1 &
loops+=("$!")
BG_PIDS+=("${loops[@]}")
start_bg churn "$PYTHON" "$PERF_DIR/lib/soak_api.py" "$sock" $((DURATION - 5)) 8080
churn=$BG_PID

log "load running for $DURATION s (idle: $FD_BASELINE fds, $RSS_BASELINE KiB RSS)"
SAMPLES=$TMP/samples
echo "# t_s rss_kib fds threads" >"$SAMPLES"
problems=()
while ((SECONDS < END)); do
  if ! alive "$DAEMON_PID"; then
    wait_exit "$DAEMON_PID" 1 || true
    problems+=("the daemon died at t=$((SECONDS - START)) s, status $EXIT_STATUS;" \
      "its last words: $(grep -v '^api_handler: got request' "$DAEMON_ERR" | tail -3 | tr '\n' '|')")
    break
  fi
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$DAEMON_PID/status")
  threads=$(awk '/^Threads/ {print $2}' "/proc/$DAEMON_PID/status")
  echo "$((SECONDS - START)) $rss $(daemon_fds) $threads" >>"$SAMPLES"
  sleep 5
done

# ---- after the load --------------------------------------------------------------------------------
log "load finished; waiting for the churn and the load loops"
wait_exit "$churn" 60 || problems+=("the API churn did not finish")
for pid in "${loops[@]}"; do wait "$pid" 2>/dev/null || true; done
log "waiting for the daemon's fd count to settle"
FD_AFTER=-1
if alive "$DAEMON_PID"; then
  # libslirp keeps closed TCP connections in TIME_WAIT for 2 x 5 s: give the count time to settle.
  for _ in $(seq 60); do
    FD_AFTER=$(daemon_fds)
    ((FD_AFTER <= FD_BASELINE + 4)) && break
    sleep 1
  done
  final_tcp=$(nettool "$C" tcp-check 10.0.2.2 5300 --bytes 1 --timeout 10)
  [[ $final_tcp == "OK 1 bytes" ]] || problems+=("TCP through the daemon after the soak: $final_tcp")
  stats=$(api "$sock" '{"execute":"get_stats"}')
else
  stats='{}'
fi

# ---- figures ---------------------------------------------------------------------------------------
# The first quarter starts after a warm-up (10% of the run, at most 60 s): buffers and libslirp's
# socket tables grow to their working size while the load ramps up.
WARMUP=$((DURATION / 10 > 60 ? 60 : DURATION / 10))
quarter_means() {  # COLUMN -> "first_quarter_mean last_quarter_mean max"
  awk -v c="$1" -v w="$WARMUP" '!/^#/ && $1 >= w { v[n++] = $c } END {
    q = int(n / 4); if (q < 1) q = 1
    for (i = 0; i < q; i++) { f += v[i]; l += v[n - 1 - i] }
    m = 0; for (i = 0; i < n; i++) if (v[i] > m) m = v[i]
    printf "%.0f %.0f %d\n", f / q, l / q, m }' "$SAMPLES"
}
read -r RSS_Q1 RSS_Q4 RSS_MAX < <(quarter_means 2)
read -r FD_Q1 FD_Q4 FD_MAX < <(quarter_means 3)
read -r THR_Q1 THR_Q4 THR_MAX < <(quarter_means 4)
NSAMPLES=$(grep -vc '^#' "$SAMPLES")

iperf_sum() {  # NAME -> "runs failed GB"
  local runs=0 failed=0 bytes=0 n s b
  [[ -f $TMP/$1.status ]] || { echo "0 0 0"; return; }
  while read -r n s; do
    runs=$((runs + 1))
    b=$(jq '.end.sum_received.bytes // 0' "$TMP/$1-$n.json" 2>/dev/null || echo 0)
    if [[ $s != 0 || $b == 0 ]]; then failed=$((failed + 1)); fi
    bytes=$((bytes + ${b%.*}))
  done <"$TMP/$1.status"
  echo "$runs $failed $(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1e9 }')"
}
read -r UP_RUNS UP_FAILED UP_GB < <(iperf_sum up)
read -r DOWN_RUNS DOWN_FAILED DOWN_GB < <(iperf_sum down)
CRR_CONNS=$(jq -s 'map(.connections // 0) | add // 0' "$TMP/crr.jsonl" 2>/dev/null || echo 0)
CRR_ERRORS=$(jq -s 'map(if .error then 1 else (.errors // 0) end) | add // 0' "$TMP/crr.jsonl" 2>/dev/null || echo 0)
CRR_CPS=$(jq -s 'map(.cps // 0) | if length > 0 then add / length | floor else 0 end' "$TMP/crr.jsonl" 2>/dev/null || echo 0)
churn_json=$(tail -1 "$TMP/churn.log")
jqc() { jq -r "$1" <<<"$churn_json" 2>/dev/null || echo "?"; }

((UP_RUNS > 0 && DOWN_RUNS > 0)) || problems+=("no iperf3 run completed")
((UP_FAILED == 0 && DOWN_FAILED == 0)) || problems+=("iperf3 runs failed: $UP_FAILED up, $DOWN_FAILED down")
((CRR_CONNS > 1000)) || problems+=("only $CRR_CONNS short connections")
((CRR_ERRORS == 0)) || problems+=("$CRR_ERRORS short-connection errors ($(sort "$TMP/crr.err" | uniq -c | head -3))")
[[ $(jqc .check_failures) == 0 ]] || problems+=("API churn: $(jqc '.failures | join("; ")')")
[[ $(jqc .checks) =~ ^[0-9]+$ ]] && (($(jqc .checks) > 0)) || problems+=("API churn made no checks: $churn_json")
((RSS_Q4 <= RSS_Q1 * 12 / 10 + 8192)) || problems+=("RSS grew: first quarter $RSS_Q1 KiB, last $RSS_Q4 KiB")
((FD_Q4 <= FD_Q1 * 12 / 10 + 16)) || problems+=("fd count grew: first quarter $FD_Q1, last $FD_Q4")
((FD_AFTER >= 0 && FD_AFTER <= FD_BASELINE + 4)) || problems+=("fds after the load: $FD_AFTER (idle baseline $FD_BASELINE)")

verdict=PASS
((${#problems[@]} == 0)) || verdict=FAIL
summary=$(
  echo "slirpnetd soak test: $verdict"
  echo "date:            $(date -u +%FT%TZ)"
  echo "daemon:          ${SLIRPNETD#"$REPO"/} ($($SLIRPNETD --version 2>/dev/null | head -1))"
  echo "duration:        $((DURATION / 60)) min $((DURATION % 60)) s, MTU 65520, $NSAMPLES samples every 5 s (quarters after a $WARMUP s warm-up)"
  echo "iperf3 ns->host: $UP_RUNS runs of 20 s (2 x 150 Mbit/s), $UP_FAILED failed, $UP_GB GB"
  echo "iperf3 host->ns: $DOWN_RUNS runs of 20 s (2 x 150 Mbit/s, -R), $DOWN_FAILED failed, $DOWN_GB GB"
  echo "short conns:     $CRR_CONNS connections (mean $CRR_CPS/s in 5 s bursts), $CRR_ERRORS errors"
  echo "forward churn:   $(jqc .adds) adds, $(jqc .removes) removes, $(jqc .checks) list checks," \
    "$(jqc .forwards_checked) forwards echoed through, $(jqc .check_failures) failures;" \
    "API p99 $(jqc .api_p99_ms) ms, max $(jqc .api_max_ms) ms"
  echo "RSS (KiB):       idle $RSS_BASELINE, first quarter mean $RSS_Q1, last quarter mean $RSS_Q4, max $RSS_MAX" \
    "(limit $((RSS_Q1 * 12 / 10 + 8192)))"
  echo "fds:             idle $FD_BASELINE, first quarter mean $FD_Q1, last quarter mean $FD_Q4, max $FD_MAX," \
    "after the load $FD_AFTER"
  echo "threads:         first quarter mean $THR_Q1, last $THR_Q4, max $THR_MAX"
  echo "daemon counters: $(jq -c '.return | {rx_frames: .tap_reader.frames, tx_frames: .tap_writer.frames,
    rx_backpressure: .tap_reader.backpressure_waits, tx_waits: .slirp.tx_waits, drops: .slirp.output_drops,
    tap_errors: (.tap_reader.errors + .tap_writer.errors), commands: .slirp.commands}' <<<"$stats" 2>/dev/null)"
  for p in "${problems[@]}"; do echo "PROBLEM: $p"; done
)
echo "$summary"
echo "$summary" >"$RESULTS/soak-latest.txt"
cp "$SAMPLES" "$RESULTS/soak-latest.samples"
((${#problems[@]} == 0)) || fail "soak: ${#problems[@]} problem(s), see above"
pass
