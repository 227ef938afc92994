#!/usr/bin/env bash
# Installs every Debian package slirpnetd needs to build, test and demo (bookworm names), then
# fetches the libslirp source package the default build patches and links
# (third_party/libslirp/fetch.sh: apt-get source with a private source list, into .cache/).
# Fast when everything is present (no apt call at all); non-interactive (works with CI=true and
# no stdin). Run as root.
set -euo pipefail

PACKAGES=(
  # build (libslirp-dev: the -DSLIRPNETD_LIBSLIRP=system build; the default bundled one builds
  # Debian's libslirp source package, fetched below with apt-get source, unpacked by dpkg-dev)
  cmake gcc g++ clang libclang-rt-14-dev pkg-config dpkg-dev patch xz-utils debian-archive-keyring
  libslirp-dev libglib2.0-dev libconcurrentqueue-dev libreaderwriterqueue-dev libspdlog-dev
  libfmt-dev rapidjson-dev catch2 libseccomp-dev
  # the manual pages' checks (groff, man -l, lexgrog) and the Debian package (cpack -G DEB runs
  # file and dpkg-shlibdeps, from dpkg-dev above)
  man-db groff-base file
  # integration tests, benchmark and demo
  iproute2 iputils-ping iperf3 ncat socat python3 jq udhcpc util-linux iptables libnetfilter-queue-dev strace
  # the reference implementation, for comparisons
  slirp4netns
  # real clients run by t_rootlesskit.sh and t_podman.sh: RootlessKit, rootless Podman with
  # crun/conmon/catatonit, the setuid newuidmap/newgidmap, a static busybox for the test image
  rootlesskit podman crun conmon catatonit golang-github-containers-common
  containernetworking-plugins uidmap fuse-overlayfs busybox-static
)

install_packages() {
  local missing=() pkg status
  for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ $status == installed ]] || missing+=("$pkg")
  done
  if ((${#missing[@]} == 0)); then
    echo "deps: all ${#PACKAGES[@]} packages present"
    return 0
  fi

  echo "deps: installing ${missing[*]}"
  if [[ $EUID -ne 0 ]]; then
    echo "deps: need root to install packages (run: sudo $0)" >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt_install() {
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
  }
  # Update the package lists only when needed: when there are none, or when the install fails
  # (e.g. stale lists).
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    apt-get update -q </dev/null
    apt_install
  elif ! apt_install; then
    apt-get update -q </dev/null
    apt_install
  fi
}

install_packages
bash "$(dirname "$0")/../third_party/libslirp/fetch.sh"
