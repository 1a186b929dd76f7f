#!/usr/bin/env bash
# An arm64 Node.js to run the linux-arm64 prebuild under qemu-user (test/integration/package.test.ts): Debian's
# nodejs and the libraries it needs, for arm64, unpacked into .cache/arm64-node/root. apt-get
# downloads them with its own package lists under .cache (the machine's dpkg architectures and
# lists are left alone); nothing is installed. Idempotent: a complete root is kept.
#   qemu-aarch64-static -L .cache/arm64-node/root .cache/arm64-node/root/usr/bin/node -e ...
set -euo pipefail
base="$(cd "$(dirname "$0")/.." && pwd)/.cache/arm64-node"
root="$base/root"
[ -f "$root/.complete" ] && exit 0
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || { echo "arm64-node: needs apt-get and dpkg-deb" >&2; exit 1; }
rm -rf "$base"
mkdir -p "$base/lists/partial" "$base/cache/archives/partial" "$base/debs" "$root"
opts=(-o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o "Dir::State::Lists=$base/lists"
      -o "Dir::Cache=$base/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
apt-get "${opts[@]}" update >"$base/update.log" 2>&1 || { echo "arm64-node: apt-get update failed (see $base/update.log)" >&2; exit 1; }
# nodejs and everything it Depends on, recursively, down to libc6.
mapfile -t pkgs < <(apt-cache "${opts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances nodejs 2>/dev/null | grep -v '^[ <]' | sort -u)
[ ${#pkgs[@]} -gt 1 ] || { echo "arm64-node: no arm64 nodejs in the package lists" >&2; exit 1; }
(cd "$base/debs" && apt-get "${opts[@]}" download "${pkgs[@]}" >"$base/download.log" 2>&1) ||
  { echo "arm64-node: download failed (see $base/download.log)" >&2; exit 1; }
for deb in "$base"/debs/*.deb; do dpkg-deb -x "$deb" "$root"; done
rm -rf "$base/debs" "$base/cache" "$base/lists"
[ -x "$root/usr/bin/node" ] || { echo "arm64-node: no usr/bin/node in the packages" >&2; exit 1; }
touch "$root/.complete"
