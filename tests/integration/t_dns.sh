#!/usr/bin/env bash
# 10.0.2.3:53 forwards DNS (UDP and TCP) to the first nameserver of the daemon's resolv.conf: here
# the harness's responder on 127.0.0.1, which must have seen the queries.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

start_container
start_configured

out=$(dns_query "$C" 10.0.2.3 host.slirpnetd.test --type A)
assert_eq "NOERROR 192.0.2.53" "$out" "A host.slirpnetd.test via 10.0.2.3 (UDP)"
out=$(dns_query "$C" 10.0.2.3 host.slirpnetd.test --type AAAA)
assert_eq "NOERROR 2001:db8::53" "$out" "AAAA host.slirpnetd.test via 10.0.2.3 (UDP)"
out=$(dns_query "$C" 10.0.2.3 nope.slirpnetd.test)
assert_eq "NXDOMAIN" "$out" "A nope.slirpnetd.test via 10.0.2.3 (UDP)"
out=$(dns_query "$C" 10.0.2.3 host.slirpnetd.test --tcp)
assert_eq "NOERROR 192.0.2.53" "$out" "A host.slirpnetd.test via 10.0.2.3 (TCP)"

seen=$(cat "$TMP/dnsd.log")
assert_contains "$seen" "udp host.slirpnetd.test 1" "responder log (UDP A)"
assert_contains "$seen" "udp host.slirpnetd.test 28" "responder log (UDP AAAA)"
assert_contains "$seen" "tcp host.slirpnetd.test 1" "responder log (TCP A)"
pass
