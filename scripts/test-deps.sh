#!/usr/bin/env bash
# System tools the tests use, installed from Debian's packages when missing (as root only;
# otherwise it lists them, and the tests that need them say so or, under CI, fail).
#   bash scripts/test-deps.sh            all of them (npm test runs this)
#   bash scripts/test-deps.sh socat ...  only these commands (the benchmarks need socat alone)
set -u
need=()
only=" $* "
have() { [ $# -eq 0 ] || { [ "$only" != "  " ] && [[ $only != *" $1 "* ]]; } || command -v "$1" >/dev/null 2>&1; }
have socat || need+=(socat)
have ip || need+=(iproute2)
have mkfs.ext4 || need+=(e2fsprogs)
have bindfs || need+=(bindfs)
have losetup || need+=(mount)
have fsfreeze || need+=(util-linux)
have tmux || need+=(tmux)
have clang-format || need+=(clang-format)
have qemu-ga || need+=(qemu-guest-agent) # the qemu-ga conformance tests run it beside ember-ga
have free || need+=(procps)
have cc && [ -f /usr/include/utmp.h ] || need+=(gcc libc6-dev)
have systemd-analyze || need+=(systemd)
have aarch64-linux-gnu-g++ || need+=(g++-aarch64-linux-gnu)
have qemu-aarch64-static || need+=(qemu-user-static)
# An arm64 Node (Debian's, unpacked under .cache) to run the arm64 prebuild with qemu-user.
if [ "$only" = "  " ]; then
  bash "$(dirname "$0")/arm64-node.sh" || echo "test-deps: no arm64 Node for the arm64 prebuild test" >&2
fi
status=0
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "test-deps: missing ${need[*]} (install them as root)" >&2
    status=1
  else
    echo "test-deps: installing ${need[*]}" >&2
    if ! apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1; then
      apt-get update >/dev/null 2>&1
      apt-get install -y --no-install-recommends "${need[@]}" >/dev/null || status=1
    fi
  fi
fi
# Debian 11's toolchains and runtime, once the aarch64 binutils are there: the prebuilds are
# compiled with them, and the x64 root is the older guest the package test runs the agent on.
if [ "$only" = "  " ]; then
  for arch in x64 arm64; do
    bash "$(dirname "$0")/bullseye.sh" "$arch" >/dev/null || echo "test-deps: no Debian 11 toolchain for $arch" >&2
  done
fi
exit $status
