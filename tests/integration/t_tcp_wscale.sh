#!/usr/bin/env bash
# TCP window scaling (RFC 7323) between the container and libslirp (issue 11), at MTU 65520 and
# 1500, on both kinds of connection libslirp terminates:
#   gateway: the container connects to 10.0.2.2:PORT (the guest's SYN, libslirp's SYN-ACK), the
#            host side is a listener on 127.0.0.1;
#   forward: a libslirp port forward (add_hostfwd), the host connects to 127.0.0.1:HOSTPORT and
#            libslirp connects to a listener in the container (libslirp's SYN, the guest's SYN-ACK).
# In each case the container sends a 64 MiB stream (paced, so that it lasts about a second) while
# `ss -tin` in the container is sampled for the connection's `wscale:` and `snd_wnd:` (the window
# libslirp advertises, as the container's kernel reads it), and the receiver checks the sha256.
# The receiver (on the host) stops reading for 0.5 s after a quarter of the stream, so libslirp's
# receive buffer fills once: a libslirp that grows its buffers on demand has grown them by the time
# the window reopens.
#
# What is expected depends on the libslirp the daemon was built with (SLIRPNETD_LIBSLIRP, set by
# CMake from -DSLIRPNETD_LIBSLIRP; default bundled):
#   bundled (our patched libslirp): both connections show `wscale:S,R` (S, libslirp's shift, at
#     most 14) and a snd_wnd above 65535 at some point of the transfer. Then with net.ipv4.tcp_window_scaling=0 in the container (a
#     per-netns sysctl) neither shows wscale, snd_wnd stays <= 65535, and transfers still work:
#     libslirp must neither offer nor use the option towards a guest that did not offer it.
#   system (Debian's libslirp 4.7: TCP_DO_RFC1323 is 0, its SYNs carry only MSS): never wscale,
#     snd_wnd <= 65535, transfers work, with or without the sysctl. Against the system build the
#     bundled expectations fail ("expected wscale"), which is what makes this test able to fail.
#     Seen with it: no wscale, snd_wnd at most 65535 in every case, mss 32767 at MTU 65520 (its
#     32 KiB segment cap), 1460 at 1500; ~20 s.
# Only the window libslirp advertises is read here (ss shows no peer receive window); that libslirp
# honours the container's scaled window shows in t_tcp_bulk.sh's host->container throughput.
# SLIRPNETD_WSCALE_BYTES: stream size (default 64 MiB); SLIRPNETD_WSCALE_RATE: its pace in bytes/s
# (default 64 MB/s).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=tests/integration/tcp_lib.sh
source "$ITEST_DIR/tcp_lib.sh"

BYTES=${SLIRPNETD_WSCALE_BYTES:-67108864}
RATE=${SLIRPNETD_WSCALE_RATE:-64000000}
# shellcheck disable=SC2034  # read by tcp_lib.sh
STREAM_TIMEOUT=60
log "libslirp: $SLIRPNETD_LIBSLIRP"

N=0
# check PATH EXPECT: one stream from the container over PATH (gateway|forward); EXPECT scaled or
# unscaled. Uses $C, $MTU, $HOSTPORT.
check() {
  local path=$1 expect=$2 what
  N=$((N + 1))
  what="MTU $MTU $path, tcp_window_scaling=$(in_ns "$C" cat /proc/sys/net/ipv4/tcp_window_scaling)"
  local samples=$TMP/ss$N.txt filter sname=src$N rname=sink$N spid rpid
  local pause=(--pause-after $((BYTES / 4)) --pause 0.5)
  : >"$samples"
  if [[ $path == gateway ]]; then
    stream_listen "$rname" host recv 127.0.0.1 7000 "${pause[@]}"
    rpid=$STREAM_PID
    stream_connect "$sname" "$C" send 10.0.2.2 7000 --bytes "$BYTES" --seed "$N" --rate "$RATE"
    spid=$STREAM_PID
    filter=(dst 10.0.2.2:7000)
  else
    stream_listen "$sname" "$C" send 0.0.0.0 80 --bytes "$BYTES" --seed "$N" --rate "$RATE"
    spid=$STREAM_PID
    stream_connect "$rname" host recv 127.0.0.1 "$HOSTPORT" "${pause[@]}"
    rpid=$STREAM_PID
    filter=(sport "=" :80)
  fi
  sample_tcp "$C" "$spid" "$samples" "${filter[@]}"
  stream_check "$what" "$BYTES" "$sname" "$spid" "$rname" "$rpid"

  local n wscale wnd
  n=$(grep -c 'snd_wnd:' "$samples" || true)
  ((n >= 3)) || fail "$what: only $n ss samples of the connection with snd_wnd (see $samples): $(head -c 600 "$samples")"
  wscale=$({ grep -oE 'wscale:[0-9]+,[0-9]+' "$samples" || true; } | sort -u | tr '\n' ' ')
  wnd=$(max_field "$samples" snd_wnd)
  log "$what: ${wscale:-no wscale}, largest snd_wnd $wnd ($n samples, mss $(max_field "$samples" mss))"
  if [[ $expect == scaled ]]; then
    [[ -n $wscale ]] || fail "$what: expected wscale in ss -ti, got: $(tail -n 1 "$samples")"
    # ss prints wscale:SND,RCV: SND is libslirp's shift, at most 14 (RFC 7323).
    if ! [[ $wscale =~ ^wscale:([0-9]+), ]] || ((BASH_REMATCH[1] > 14)); then
      fail "$what: libslirp's window shift must be 0-14, got $wscale"
    fi
    ((wnd > 65535)) || fail "$what: expected a snd_wnd above 65535 (window scaling in use), largest $wnd"
  else
    [[ -z $wscale ]] || fail "$what: expected no window scaling, got $wscale"
    ((wnd <= 65535)) || fail "$what: snd_wnd $wnd > 65535 without window scaling"
  fi
}

for MTU in 65520 1500; do
  start_container
  sock=$TMP/api-$MTU.sock
  start_configured_api "$sock" --mtu "$MTU"
  HOSTPORT=$((8000 + MTU % 1000))  # each daemon's forward on a port of its own
  add_fwd "$sock" tcp 127.0.0.1 "$HOSTPORT" 80
  on=unscaled
  [[ $SLIRPNETD_LIBSLIRP == bundled ]] && on=scaled
  check gateway "$on"
  check forward "$on"
  in_ns "$C" sysctl -qw net.ipv4.tcp_window_scaling=0
  assert_eq 0 "$(in_ns "$C" cat /proc/sys/net/ipv4/tcp_window_scaling)" "tcp_window_scaling in the container"
  check gateway unscaled
  check forward unscaled
  alive "$DAEMON_PID" || fail "daemon (MTU $MTU) died"
  # Checksums of the container's segments (TAP offloads, IFF_VNET_HDR): the bundled libslirp takes
  # them partial as the container's kernel left them (SLIRP_INPUT_CSUM_VALID), at every MTU, so the
  # TAP reader completes none; the system one needs each completed, and offloads are only on below
  # MTU 32768.
  stats=$(api "$sock" '{"execute":"get_stats"}')
  left=$(jq .return.tap_reader.csum_left_partial <<<"$stats")
  completed=$(jq .return.tap_reader.csum_completed <<<"$stats")
  log "MTU $MTU: checksums left partial $left, completed $completed"
  if [[ $SLIRPNETD_LIBSLIRP == bundled ]]; then
    ((left > 1000 && completed == 0)) || fail "MTU $MTU: expected partial checksums left to libslirp, got left $left, completed $completed"
  elif ((MTU < 32768)); then
    ((left == 0 && completed > 1000)) || fail "MTU $MTU: expected every partial checksum completed, got left $left, completed $completed"
  else
    ((left == 0 && completed == 0)) || fail "MTU $MTU: expected no offloads, got left $left, completed $completed"
  fi
  # The sysctl is the container's own: the outer namespace keeps scaling on.
  assert_eq 1 "$(cat /proc/sys/net/ipv4/tcp_window_scaling)" "tcp_window_scaling outside"
done
pass
