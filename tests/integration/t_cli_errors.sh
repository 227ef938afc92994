#!/usr/bin/env bash
# Every bad command line (docs/compatibility.md, "Command line") prints its message on stderr and exits
# 1 without creating the TAP; the usage text goes to stdout exactly where slirp4netns prints it.
# getopt-style messages are matched without their "<program>: " prefix.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

start_container
n=0
# check USAGE|NOUSAGE "stderr substring" ARGS...
check() {
  local usage=$1 msg=$2
  shift 2
  n=$((n + 1))
  run_daemon "$@"
  local what="'$*'"
  assert_eq 1 "$RUN_STATUS" "exit status of $what (stderr: $RUN_ERR)"
  assert_contains "$RUN_ERR" "$msg" "stderr of $what"
  if [[ $usage == USAGE ]]; then
    assert_contains "$RUN_OUT" "Usage: " "stdout of $what (usage expected)"
  else
    assert_not_contains "$RUN_OUT" "Usage: " "stdout of $what (no usage expected)"
  fi
  if in_ns "$C" ip link show dev tap0 >/dev/null 2>&1; then
    fail "$what created tap0 although the command line is invalid"
  fi
}

# getopt
check USAGE "unrecognized option '--bogus'" --bogus "$C" tap0
check USAGE "invalid option -- 'x'" -x "$C" tap0
check USAGE "option '--mtu' requires an argument" "$C" tap0 --mtu
check USAGE "option requires an argument -- 'm'" "$C" tap0 -m
check USAGE "option '--disable' is ambiguous" --disable "$C" tap0
# option values
check USAGE "exit-fd must be a non-negative integer" -e abc "$C" tap0
check USAGE "exit-fd must be a non-negative integer" --exit-fd=-1 "$C" tap0
check USAGE "exit-fd must be a non-negative integer" -e 3x "$C" tap0
check USAGE "ready-fd must be a non-negative integer" -r x "$C" tap0
check USAGE "ready-fd must be a non-negative integer" --ready-fd=-2 "$C" tap0
check USAGE "MTU must be a positive integer (< 65522)" -m 0 "$C" tap0
check USAGE "MTU must be a positive integer (< 65522)" --mtu=65522 "$C" tap0
check USAGE "MTU must be a positive integer (< 65522)" -m abc "$C" tap0
check USAGE "--macaddr cannot be specified when --configure or -c is not specified" \
  --macaddress 0e:d4:18:d9:38:fb "$C" tap0
check NOUSAGE '"zz:d4:18:d9:38:fb" is an invalid MAC address.' -c --macaddress zz:d4:18:d9:38:fb "$C" tap0
check NOUSAGE "macaddress has to be a valid MAC address" -c --macaddress zz:d4:18:d9:38:fb "$C" tap0
check NOUSAGE '"0e:d4:18:d9:38:fb:01" is an invalid MAC address.  Is it too long?' \
  -c --macaddress 0e:d4:18:d9:38:fb:01 "$C" tap0
check USAGE "userns path doesn't exist: /nonexistent" --userns-path=/nonexistent "$C" tap0
check USAGE "existing path expected when --netns-type=path" --netns-type=path /nonexistent tap0
check USAGE '--target-type must be either "netns" or "bess"' --target-type=foo "$C" tap0
check USAGE "--configure conflicts with --target-type=bess" --target-type=bess -c "$TMP/bess.sock"
check USAGE "--netns-type conflicts with --target-type=bess" --target-type=bess --netns-type=pid "$TMP/bess.sock"
check USAGE "--userns-path conflicts with --target-type=bess" --target-type=bess --userns-path=/ "$TMP/bess.sock"
check USAGE "too many arguments" --target-type=bess "$TMP/bess.sock" "$TMP/other"
check NOUSAGE "outbound-addr has to be valid ipv4 address or" --outbound-addr=nonexistent0 "$C" tap0
check NOUSAGE "outbound-addr has to be valid ipv4 address or" --outbound-addr6=nonexistent0 "$C" tap0
# positionals: a missing one prints the usage only
check USAGE "PID must be a positive integer" abc tap0
check USAGE "PID must be a positive integer" 0 tap0
check USAGE "" "$C"
check USAGE ""
check USAGE "" --target-type=bess
# --cidr: no usage
check NOUSAGE "invalid CIDR: 24" --cidr 24 "$C" tap0
check NOUSAGE "invalid CIDR: foo" --cidr=foo "$C" tap0
check NOUSAGE "invalid CIDR: 10.0.2.0" --cidr 10.0.2.0 "$C" tap0
check NOUSAGE "invalid CIDR: 10.0.2.0/024" --cidr 10.0.2.0/024 "$C" tap0
check NOUSAGE "invalid CIDR: 10.0.2.0/100" --cidr 10.0.2.0/100 "$C" tap0
check NOUSAGE "invalid network address: 300.0.2.0" --cidr 300.0.2.0/24 "$C" tap0
check NOUSAGE "invalid network address: 010.0.2.0" --cidr 010.0.2.0/24 "$C" tap0
check NOUSAGE "prefix length needs to be 1-25" --cidr 10.0.2.0/26 "$C" tap0
check NOUSAGE "prefix length needs to be 1-25" --cidr 10.0.2.0/0 "$C" tap0
check NOUSAGE "prefix length needs to be 1-25" --cidr 10.0.2.100/26 "$C" tap0
check NOUSAGE "CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.100/24" \
  --cidr 10.0.2.100/24 "$C" tap0
log "$n bad command lines rejected"
pass
