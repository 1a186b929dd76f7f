#!/usr/bin/env bash
# Debian 11's compiler and C/C++ runtimes, for building the prebuilds against an older guest's
# libraries (scripts/prebuild.js) and for loading them on one (test/integration/package.test.ts):
#
#   bash scripts/bullseye.sh x64|arm64      prints the root: .cache/bullseye/linux-ARCH/root
#
# x64: gcc-10 and g++-10 with glibc 2.31 and GCC 10's libstdc++, also the runtime a Debian 11 guest
# has. arm64: the same as Debian's cross compiler (aarch64-linux-gnu-g++-10), with arm64 glibc
# 2.31 and libstdc++ under usr/aarch64-linux-gnu; it assembles and links with this machine's
# cross binutils (Debian 12: binutils-aarch64-linux-gnu). Compile with --sysroot=ROOT.
# A prebuild compiled here needs no newer glibc or libstdc++ than its code asks for (the newest
# versions, which `npm run prebuild` prints, are what docs/INSTALL.md states), where one compiled
# against Debian 12's needed glibc 2.33 and GCC 12's libstdc++ (GLIBCXX_3.4.30: not RHEL 9).
#
# apt-get downloads the packages with its own sources, package lists and (empty) status under
# .cache: the machine's apt setup is left alone and nothing is installed; the .debs are unpacked
# with dpkg-deb -x, and their absolute symlinks made relative so they resolve inside the root.
# The compilers run on this machine's libraries (libisl, libmpc, libmpfr, libgmp: its own gcc's).
# Idempotent: a complete root is kept.
set -euo pipefail
arch=${1:?usage: bullseye.sh x64|arm64}
[ "$(uname -m)" = x86_64 ] || { echo "bullseye: builds on x86_64 only" >&2; exit 1; }
case "$arch" in
  x64) pkgs=(gcc-10 g++-10 cpp-10 libgcc-10-dev libstdc++-10-dev libc6-dev libc6 libcrypt-dev libcrypt1
             linux-libc-dev libstdc++6 libgcc-s1) ;;
  arm64) pkgs=(gcc-10-aarch64-linux-gnu g++-10-aarch64-linux-gnu cpp-10-aarch64-linux-gnu
               libgcc-10-dev-arm64-cross libstdc++-10-dev-arm64-cross libc6-dev-arm64-cross libc6-arm64-cross
               linux-libc-dev-arm64-cross libstdc++6-arm64-cross libgcc-s1-arm64-cross) ;;
  *) echo "bullseye: no toolchain for $arch (x64, arm64)" >&2; exit 1 ;;
esac
base="$(cd "$(dirname "$0")/.." && pwd)/.cache/bullseye/linux-$arch"
root="$base/root"
if [ ! -f "$root/.complete" ]; then
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || { echo "bullseye: needs apt-get and dpkg-deb" >&2; exit 1; }
  # Checked before anything is downloaded: the cross compiler assembles and links with these.
  if [ "$arch" = arm64 ] && [ ! -x /usr/aarch64-linux-gnu/bin/as ]; then
    echo "bullseye: needs /usr/aarch64-linux-gnu/bin/as (apt-get install binutils-aarch64-linux-gnu)" >&2
    exit 1
  fi
  rm -rf "$base"
  mkdir -p "$base/lists/partial" "$base/cache/archives/partial" "$base/debs" "$root"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bullseye main" >"$base/sources.list"
  : >"$base/status"
  opts=(-o APT::Architecture=amd64 -o "Dir::Etc::SourceList=$base/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$base/lists" -o "Dir::State::status=$base/status" -o "Dir::Cache=$base/cache"
        -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
  apt-get "${opts[@]}" update >"$base/update.log" 2>&1 || { echo "bullseye: apt-get update failed (see $base/update.log)" >&2; exit 1; }
  (cd "$base/debs" && apt-get "${opts[@]}" download "${pkgs[@]}" >"$base/download.log" 2>&1) ||
    { echo "bullseye: download failed (see $base/download.log)" >&2; exit 1; }
  for deb in "$base"/debs/*.deb; do dpkg-deb -x "$deb" "$root"; done
  rm -rf "$base/debs" "$base/cache" "$base/lists"
  (cd "$root" && find . -type l -lname '/*' | while read -r l; do
    ln -sfn "$(realpath -m -s --relative-to="$(dirname "$l")" ".$(readlink "$l")")" "$l"
  done)
  if [ "$arch" = arm64 ]; then
    # Bullseye's cross binutils want bullseye's libraries; this machine's own do the same job.
    mkdir -p "$root/usr/aarch64-linux-gnu/bin"
    for t in /usr/aarch64-linux-gnu/bin/*; do ln -sfn "$t" "$root/usr/aarch64-linux-gnu/bin/$(basename "$t")"; done
  fi
  # The compiler must work here, or nothing may say it does.
  triplet=$([ "$arch" = x64 ] && echo x86_64-linux-gnu || echo aarch64-linux-gnu)
  printf '#include <string>\nint main() { return std::string("ok").size() == 2 ? 0 : 1; }\n' >"$base/check.cc"
  "$root/usr/bin/$triplet-g++-10" --sysroot="$root" "$base/check.cc" -o "$base/check" 2>"$base/check.log" ||
    { echo "bullseye: the $arch compiler does not work here (see $base/check.log)" >&2; exit 1; }
  rm -f "$base/check" "$base/check.cc"
  touch "$root/.complete"
fi
echo "$root"
