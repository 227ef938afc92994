# The Debian package, built by CPack from what `cmake --install` installs (the binary, the manual
# pages, the copyright file), with prefix /usr:
#   cd build && cpack -G DEB && sudo apt install ./slirpnetd_*.deb
# Depends comes from dpkg-shlibdeps on the binary, so it names the shared libraries this build
# links (the system-libslirp build adds libslirp0). tests/package/t_deb.sh builds, installs,
# runs and purges it.
set(CPACK_PACKAGE_NAME slirpnetd)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "user-mode networking for unprivileged network namespaces")
# Debian wants the extended description's lines under 80 columns.
set(CPACK_PACKAGE_DESCRIPTION
  "slirpnetd gives a network namespace, such as a rootless container's, access
to the host's network without privileges: a TAP device in the namespace and a
user-mode TCP/IP stack (libslirp) behind it. It is a drop-in replacement for
slirp4netns (same command line, API socket and exit statuses) for Podman and
RootlessKit, with a multi-threaded frame pipeline, its own patched libslirp
(TCP window scaling) and a splice(2) port forwarder; `slirpnetd run` runs a
command in new namespaces networked by it.")
set(CPACK_PACKAGE_CONTACT "slirpnetd maintainers <maintainers@users.noreply.h-seed-da9d837b.example>")
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_GENERATOR DEB)
set(CPACK_STRIP_FILES ON)  # RelWithDebInfo builds carry debug information the package does not need

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # slirpnetd_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
include(CPack)
