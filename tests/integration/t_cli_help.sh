#!/usr/bin/env bash
# --help/-h and --version/-v exit 0 on stdout. Podman and RootlessKit detect features by grepping
# the help, so every flag they look for must be in it; the version output keeps the lines clients
# parse (docs/compatibility.md, "Command line").
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

for flag in --help -h; do
  run_daemon "$flag"
  assert_eq 0 "$RUN_STATUS" "exit status of $flag"
  assert_contains "$RUN_OUT" "Usage: " "stdout of $flag"
  for want in --configure --exit-fd --ready-fd --disable-host-loopback --mtu --enable-sandbox \
    --enable-seccomp --cidr --outbound-addr --enable-ipv6 --netns-type --api-socket \
    --userns-path --macaddress --target-type --disable-dns; do
    assert_contains "$RUN_OUT" "$want" "stdout of $flag"
  done
done
# getopt order: an invalid option before --help wins.
run_daemon --bogus --help
assert_eq 1 "$RUN_STATUS" "exit status of '--bogus --help'"

for flag in --version -v; do
  run_daemon "$flag"
  assert_eq 0 "$RUN_STATUS" "exit status of $flag"
  assert_match "$RUN_OUT" "^[a-z0-9]+ version [0-9]" "first line of $flag"
  assert_match "$RUN_OUT" $'\nlibslirp: [0-9]+\\.[0-9]+\\.[0-9]+' "libslirp line of $flag"
  assert_match "$RUN_OUT" $'\nSLIRP_CONFIG_VERSION_MAX: [0-9]+' "SLIRP_CONFIG_VERSION_MAX line of $flag"
done
pass
