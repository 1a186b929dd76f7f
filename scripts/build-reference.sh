#!/usr/bin/env bash
# Builds the reference agent, phoenix-guest-agent 0.7.1 (Go), into .cache/reference/ so that
# `npm run bench` measures it in the same run as ember-ga: same bridge, same hosts, same rounds.
# Without it the benchmark compares with the issue's figures, taken on another day.
#
#   bash scripts/build-reference.sh [REPO]
#     REPO: where to clone phoenix-guest-agent from (a URL, or a local clone or mirror);
#           default https://github.com/0xef53/phoenix-guest-agent
#
# 0.7.1 predates Go modules: it builds in GOPATH mode against github.com/vishvananda/netlink,
# which Debian packages (golang-github-vishvananda-netlink-dev, with golang-go); as root they are
# installed when missing. Nothing of the reference's is kept but the executable.
set -euo pipefail
repo_url=${1:-https://github.com/0xef53/phoenix-guest-agent}
commit=90ae879fa1081bcd8bb2c4ec68167eeba3d2f23d # "v0.7.1" (the project has no tag for it)
out=$(cd "$(dirname "$0")/.." && pwd)/.cache/reference

gocode=/usr/share/gocode
if ! command -v go >/dev/null 2>&1 || [ ! -d "$gocode/src/github.com/vishvananda/netlink" ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "build-reference: needs Go and $gocode/src/github.com/vishvananda/netlink (Debian: apt-get install golang-go golang-github-vishvananda-netlink-dev)" >&2
    exit 1
  fi
  echo "build-reference: installing golang-go golang-github-vishvananda-netlink-dev" >&2
  apt-get install -y --no-install-recommends golang-go golang-github-vishvananda-netlink-dev >/dev/null 2>&1 ||
    { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends golang-go golang-github-vishvananda-netlink-dev >/dev/null; }
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone --quiet --no-checkout "$repo_url" "$work/repo"
src="$work/gopath/src/phoenix-guest-agent"
mkdir -p "$src"
git -C "$work/repo" archive "$commit" | tar -x -C "$src"
grep -q 'VERSION = "0.7.1"' "$src/main.go" || { echo "build-reference: $commit is not 0.7.1" >&2; exit 1; }
mkdir -p "$out"
(cd "$src" && GO111MODULE=off GOPATH="$work/gopath:$gocode" GOCACHE="$work/cache" GOFLAGS= go build -o "$out/phoenix-guest-agent" .)
echo "build-reference: $out/phoenix-guest-agent ($("$out/phoenix-guest-agent" -v), built with $(go version | cut -d' ' -f3))"
