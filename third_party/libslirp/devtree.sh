#!/usr/bin/env bash
# third_party/libslirp/devtree.sh DIR: makes DIR a git repository of the bundled libslirp, one
# commit per patch of the series, for working on the patches:
#
#   third_party/libslirp/devtree.sh /tmp/libslirp && cd /tmp/libslirp
#   ... edit, commit, rebase -i ...
#   git format-patch -o <repo>/third_party/libslirp/patches/ --no-numbered --zero-commit \
#     --no-signature debian..HEAD      (then update patches/series)
#
# The first commit is Debian's 4.7.0-1 source package (tag "pristine"), then the patches taken from
# Debian (tag "debian"), then ours, in the order of patches/series.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DIR=${1:?usage: devtree.sh DIR}
CACHE=${SLIRPNETD_SOURCE_CACHE:-$ROOT/.cache/sources}
bash "$HERE/fetch.sh" "$CACHE"
[[ ! -e $DIR ]] || { echo "devtree.sh: $DIR exists" >&2; exit 1; }
cp -a "$CACHE/libslirp-4.7.0" "$DIR"
cd "$DIR"
git init -q
git add -A
git -c user.name=slirpnetd -c user.email=dev@slirpnetd.invalid commit -qm "libslirp 4.7.0-1 (Debian bookworm source package)"
git tag pristine
while read -r line; do
  [[ -z $line || $line == \#* ]] && continue
  if [[ $line == debian:* ]]; then
    p=$CACHE/debian-patches/${line#debian:}
    patch -p1 --batch -s <"$p"
    git add -A
    git -c user.name=slirpnetd -c user.email=dev@slirpnetd.invalid commit -qm "Debian: ${line#debian:}"
    git tag -f debian >/dev/null
  else
    git -c user.name=slirpnetd -c user.email=dev@slirpnetd.invalid am -q "$HERE/patches/$line"
  fi
done <"$HERE/patches/series"
git log --oneline
