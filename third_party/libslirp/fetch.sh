#!/usr/bin/env bash
# third_party/libslirp/fetch.sh: fetches the libslirp sources the bundled build starts from.
#
#   fetch.sh [CACHE_DIR]        (default: $SLIRPNETD_SOURCE_CACHE, else <repo>/.cache/sources)
#
# It leaves in CACHE_DIR:
#   libslirp-4.7.0/             Debian bookworm's source package libslirp 4.7.0-1, unpacked by
#                               dpkg-source (pristine: the build copies it and patches the copy)
#   debian-patches/             patches taken from Debian's later source packages that the
#                               series (patches/series) names as "debian:FILE"
#   FETCHED                     a stamp, written last: its presence means all of the above is whole
#
# Everything comes through apt with a private configuration passed as options
# (-o Dir::Etc::SourceList=... -o Dir::Etc::SourceParts=... -o Dir::State::Lists=...
# -o Dir::Cache=...): the machine's apt configuration, lists and caches are not touched. apt checks
# every file it fetches against the Sources index, whose signature it checks with Debian's
# archive keyring. Nothing here is committed to the repository: .cache/ is ignored by git.
#
# Works as root or not (as root, apt warns that it downloads unsandboxed: the private directories
# are not readable by its _apt user). Needs apt, dpkg-dev (dpkg-source) and xz.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${1:-${SLIRPNETD_SOURCE_CACHE:-$ROOT/.cache/sources}}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
MIRROR=${SLIRPNETD_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# What we take, and from where. The base is bookworm's package; the CVE fix is the patch Debian
# added in trixie's 4.8.0-1+deb13u1 (it applies to 4.7.0 unchanged).
BASE_VERSION=4.7.0-1
BASE_DIR=libslirp-4.7.0
CVE_VERSION=4.8.0-1+deb13u1
CVE_PATCHES=(oob-cap-urgent-data-to-what-is-available-CVE-2026-9539.patch)

if [[ -f $CACHE/FETCHED ]]; then
  exit 0
fi

for tool in apt-get apt-cache dpkg-source sha256sum tar; do
  command -v "$tool" >/dev/null ||
    { echo "fetch.sh: missing $tool (run scripts/deps.sh as root)" >&2; exit 1; }
done
[[ -r $KEYRING ]] || { echo "fetch.sh: missing $KEYRING (package debian-archive-keyring)" >&2; exit 1; }

mkdir -p "$CACHE"
work=$(mktemp -d "$CACHE/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
apt_dir=$work/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/parts" "$apt_dir/cache/archives/partial" "$work/dl"
cat >"$apt_dir/sources.list" <<LIST
deb-src [signed-by=$KEYRING] $MIRROR bookworm main
deb-src [signed-by=$KEYRING] $MIRROR trixie main
LIST
apt_opts=(
  -o "Dir::Etc::SourceList=$apt_dir/sources.list"
  -o "Dir::Etc::SourceParts=$apt_dir/parts"
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::Cache=$apt_dir/cache"
  -o "Debug::NoLocking=1"
  -q
)

echo "fetch.sh: apt-get update (private source list: bookworm and trixie deb-src)"
apt-get "${apt_opts[@]}" update </dev/null >"$work/update.log" 2>&1 ||
  { cat "$work/update.log" >&2; echo "fetch.sh: apt-get update failed" >&2; exit 1; }

echo "fetch.sh: apt-get source libslirp=$BASE_VERSION"
(cd "$work/dl" && apt-get "${apt_opts[@]}" source "libslirp=$BASE_VERSION" </dev/null) \
  >"$work/source.log" 2>&1 ||
  { cat "$work/source.log" >&2; echo "fetch.sh: apt-get source failed" >&2; exit 1; }
[[ -f $work/dl/$BASE_DIR/src/tcp_input.c ]] ||
  { echo "fetch.sh: $BASE_DIR/src/tcp_input.c missing after unpacking" >&2; exit 1; }

# The CVE fix: only the .debian.tar.xz of the later package is needed. apt-get source fetches and
# hash-checks each file on its own; the mirror has been seen to lack this package's .dsc (404), so
# a failure of the whole command is tolerated, and the one file we use is checked here against the
# SHA-256 the signed Sources index gives for it.
echo "fetch.sh: Debian's CVE-2026-9539 patch from libslirp=$CVE_VERSION"
(cd "$work/dl" && apt-get "${apt_opts[@]}" source --download-only "libslirp=$CVE_VERSION" </dev/null) \
  >"$work/cve.log" 2>&1 || true
debtar=libslirp_${CVE_VERSION}.debian.tar.xz
want=$(apt-cache "${apt_opts[@]}" showsrc libslirp 2>/dev/null |
  awk -v f="$debtar" '/^Checksums-Sha256:/ {s = 1; next} /^[^ ]/ {s = 0} s && $3 == f {print $1; exit}')
[[ -n $want ]] || { echo "fetch.sh: $debtar is not in the signed Sources index" >&2; exit 1; }
[[ -f $work/dl/$debtar ]] || { cat "$work/cve.log" >&2; echo "fetch.sh: could not fetch $debtar" >&2; exit 1; }
got=$(sha256sum "$work/dl/$debtar" | cut -d' ' -f1)
[[ $got == "$want" ]] || { echo "fetch.sh: $debtar: SHA-256 $got, index says $want" >&2; exit 1; }
mkdir -p "$work/debian-patches"
for p in "${CVE_PATCHES[@]}"; do
  tar -xJf "$work/dl/$debtar" -O "debian/patches/$p" >"$work/debian-patches/$p" ||
    { echo "fetch.sh: $p is not in $debtar" >&2; exit 1; }
done

rm -rf "$CACHE/$BASE_DIR" "$CACHE/debian-patches"
mv "$work/dl/$BASE_DIR" "$CACHE/$BASE_DIR"
mv "$work/debian-patches" "$CACHE/debian-patches"
cp "$work/dl/"*.dsc "$CACHE/" 2>/dev/null || true
{
  echo "libslirp $BASE_VERSION (bookworm source package), unpacked in $BASE_DIR"
  for p in "${CVE_PATCHES[@]}"; do echo "debian-patches/$p from libslirp $CVE_VERSION ($debtar, sha256 $want)"; done
  echo "fetched $(date -u +%FT%TZ) from $MIRROR"
} >"$CACHE/FETCHED"
echo "fetch.sh: done: $CACHE"
