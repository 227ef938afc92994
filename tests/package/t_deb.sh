#!/usr/bin/env bash
# The Debian package end to end (CTest: package/deb, label "package"):
#   1. `cpack -G DEB` makes slirpnetd_<version>_<arch>.deb, whose Depends dpkg-shlibdeps filled
#      in, holding the binary, both manual pages and the copyright file;
#   2. `dpkg -i` installs it; the installed /usr/bin/slirpnetd prints its version, man finds its
#      pages, and it networks a container in the hermetic harness (t_installed.sh);
#   3. `dpkg --purge` removes it: dpkg no longer knows the package and none of its files is left.
# It changes the machine's package database, so it runs as root only, and skips (77) when a
# slirpnetd package or a /usr/bin/slirpnetd is already there: someone else's, not to be replaced.
# Whatever happens, a package it installed is purged when it exits.
# Usage: t_deb.sh CPACK BUILD_DIR VERSION
set -euo pipefail
cpack=$1 build=$2 version=$3
here=$(cd "$(dirname "$0")" && pwd)
pkg=slirpnetd
skip() {
  echo "SKIP [package/deb]: $*"
  exit 77
}
fail() {
  echo "FAIL [package/deb]: $*" >&2
  exit 1
}
log() { echo "# $*"; }

[[ $EUID -eq 0 ]] || skip "needs root (dpkg -i, and the harness's namespaces)"
for tool in dpkg dpkg-deb dpkg-query dpkg-shlibdeps man; do
  command -v "$tool" >/dev/null || skip "$tool missing: not a Debian system with dpkg-dev and man-db"
done
status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
[[ -z $status || $status == not-installed ]] || skip "package $pkg is already on this machine ($status)"
[[ ! -e /usr/bin/slirpnetd ]] || skip "/usr/bin/slirpnetd exists and is not ours"

work=$(mktemp -d "${TMPDIR:-/tmp}/slirpnetd-deb.XXXXXX")
installed=0
cleanup() {
  local rc=$?
  if ((installed)); then
    log "purging $pkg after a failure"
    dpkg --purge "$pkg" </dev/null >/dev/null 2>&1 || echo "FAIL [package/deb]: dpkg --purge $pkg failed" >&2
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

# 1. The package.
log "cpack -G DEB (build dir $build)"
"$cpack" -G DEB --config "$build/CPackConfig.cmake" -B "$work" >"$work/cpack.log" 2>&1 ||
  { cat "$work/cpack.log" >&2; fail "cpack failed"; }
deb=$work/${pkg}_${version}_$(dpkg --print-architecture).deb
[[ -f $deb ]] || fail "no $(basename "$deb"); cpack made: $(cd "$work" && echo *.deb)"
fields=$(dpkg-deb -f "$deb" Package Version Depends)
log "$(basename "$deb"):"$'\n'"$fields"
depends=$(dpkg-deb -f "$deb" Depends)
# dpkg-shlibdeps names the packages of the shared libraries the binary links, with versions.
for dep in libc6 libglib2.0-0 libseccomp2 libstdc++6; do
  [[ $depends =~ (^|, )"$dep"\ \(\>=\ [^\)]+\) ]] || fail "Depends lacks a versioned $dep: $depends"
done
contents=$(dpkg-deb -c "$deb" | awk '{print $NF}')
for f in ./usr/bin/slirpnetd ./usr/share/man/man1/slirpnetd.1.gz ./usr/share/man/man1/slirpnetd-run.1.gz \
  ./usr/share/man/man1/slirpnetd-stats.1.gz ./usr/share/doc/slirpnetd/copyright; do
  grep -qxF "$f" <<<"$contents" || fail "the package lacks $f; it holds:"$'\n'"$contents"
done

# 2. Installed.
log "dpkg -i"
installed=1
DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" </dev/null >"$work/dpkg.log" 2>&1 ||
  { cat "$work/dpkg.log" >&2; fail "dpkg -i failed"; }
files=$(dpkg -L "$pkg")
out=$(/usr/bin/slirpnetd --version | head -1)
[[ $out == "slirpnetd version $version" ]] || fail "/usr/bin/slirpnetd --version: '$out'"
# Minimal images may tell dpkg not to install manual pages (path-exclude in dpkg.cfg.d).
if grep -Eqs '^path-exclude=/usr/share/man' /etc/dpkg/dpkg.cfg /etc/dpkg/dpkg.cfg.d/*; then
  log "dpkg is configured not to install /usr/share/man here: man -w not checked"
else
  for page in slirpnetd slirpnetd-run slirpnetd-stats; do
    where=$(man -w "$page" 2>&1) || fail "man -w $page: $where"
    [[ $where == /usr/share/man/man1/$page.1.gz ]] || fail "man -w $page: $where"
  done
fi
grep -q 'License: Apache-2.0' /usr/share/doc/slirpnetd/copyright || fail "copyright names no Apache-2.0"
log "the installed binary in the hermetic harness (t_installed.sh)"
env -u SLIRPNETD_HERMETIC SLIRPNETD=/usr/bin/slirpnetd bash "$here/t_installed.sh" ||
  fail "t_installed.sh failed with /usr/bin/slirpnetd"

# 3. Purged.
log "dpkg --purge"
dpkg --purge "$pkg" </dev/null >"$work/purge.log" 2>&1 || { cat "$work/purge.log" >&2; fail "dpkg --purge failed"; }
installed=0
status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
[[ -z $status || $status == not-installed ]] || fail "dpkg still knows $pkg after the purge ($status)"
if out=$(dpkg -L "$pkg" 2>/dev/null) && [[ -n $out ]]; then fail "dpkg -L $pkg after the purge: $out"; fi
left=()
while read -r f; do
  [[ -n $f && $f != /. ]] || continue
  # Directories other packages own too (/usr/bin, ...) stay; everything else must be gone.
  if [[ -e $f || -L $f ]] && ! { [[ -d $f ]] && dpkg-query -S "$f" >/dev/null 2>&1; }; then left+=("$f"); fi
done <<<"$files"
((${#left[@]} == 0)) || fail "left after the purge: ${left[*]}"
echo "PASS [package/deb]: $(basename "$deb") built, installed, run, purged (none of its $(wc -l <<<"$files") paths left but shared directories)"
