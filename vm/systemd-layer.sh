#!/usr/bin/env bash
# The systemd guest for `npm run test:vm`: the image build-image.sh made, plus a second initramfs
# layer (the kernel unpacks both, in order) holding Debian's systemd and udev with every package
# they depend on, and ember-ga's unit and udev rule installed the way README's "Install in a
# guest image" says (/etc/systemd/system, /etc/udev/rules.d, the bin on PATH in /usr/local/bin).
# Booted with rdinit=/preinit, which loads the image's modules and becomes systemd: the rule, not
# /init, starts the agent when the port appears, and Restart=always brings it back.
#
#   vm/systemd-layer.sh CACHE_DIR BASE_INITRD     prints "initrd=PATH" (base + layer) last
#
# Rebuilt only when its key changes: the package versions, the base initrd, the unit, the rule
# and this script. The packages are `apt-get download`ed with the machine's package lists and
# unpacked with dpkg-deb -x; nothing is installed on the host.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=$(mkdir -p "${1:?usage: systemd-layer.sh CACHE_DIR BASE_INITRD}/systemd" && cd "$1/systemd" && pwd)
base=${2:?usage: systemd-layer.sh CACHE_DIR BASE_INITRD}
say() { echo "vm-systemd: $*" >&2; }

# The packages (systemd, udev and everything they depend on) as NAME=VERSION lines, in `versions`,
# and the layer's key; from the machine's package lists as they are now.
resolve() {
  local pkgs
  mapfile -t pkgs < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances systemd udev 2>/dev/null | grep -v '^[ <]' | sort -u)
  [ ${#pkgs[@]} -gt 1 ] || return 1
  # One apt-cache call for all (one per package takes most of a minute).
  versions=$(apt-cache show --no-all-versions "${pkgs[@]}" | awk '/^Package:/ {p = $2} /^Version:/ {print p "=" $2}' | sort -u)
  [ -n "$versions" ] || return 1
  key=$( {
    echo "$versions"
    sha256sum "$base" "$here/systemd-layer.sh" "$repo/systemd/ember-ga.service" "$repo/systemd/60-ember-ga.rules" | awk '{print $1}'
  } | sha256sum | awk '{print $1}')
}
download() {
  local wanted
  mapfile -t wanted <<<"$versions"
  rm -rf "$cache/debs" && mkdir -p "$cache/debs"
  (cd "$cache/debs" && apt-get download "${wanted[@]}" >"$cache/download.log" 2>&1)
}
versions='' key=''
resolve || { apt-get update >/dev/null 2>&1; resolve; } || { say "cannot resolve systemd and udev in the package lists"; exit 1; }
out="$cache/initrd.gz"
if [ -f "$cache/key" ] && [ "$(cat "$cache/key")" = "$key" ] && [ -f "$out" ]; then
  say "systemd layer up to date (key ${key:0:12})"
  echo "initrd=$out"
  exit 0
fi
say "building the systemd layer ($(wc -l <<<"$versions") packages)"
# Stale lists name versions the mirror no longer has: update, resolve again, and retry.
download || { apt-get update >/dev/null 2>&1 && resolve && download; } || { cat "$cache/download.log" >&2; exit 1; }
rm -rf "$cache/root" && mkdir -p "$cache/root"
root="$cache/root"
for deb in "$cache"/debs/*.deb; do dpkg-deb -x "$deb" "$root"; done

# ember-ga as README installs it: npm's global bin on systemd's PATH (the image's agent is under
# /opt/ember-ga, npm install -g --prefix), the unit and the rule copied from the package.
mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system" "$root/etc/udev/rules.d"
ln -s /opt/ember-ga/bin/ember-ga "$root/usr/local/bin/ember-ga"
cp "$repo/systemd/ember-ga.service" "$root/etc/systemd/system/"
cp "$repo/systemd/60-ember-ga.rules" "$root/etc/udev/rules.d/"
# What a Debian system has that the image lacks: env (busybox's, for the unit's /usr/bin/env),
# users and groups (udev's rules name groups), an os-release, an empty machine-id (systemd
# makes one up for the boot).
mkdir -p "$root/usr/bin"
ln -s /bin/busybox "$root/usr/bin/env"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
for g in root:0 tty:5 disk:6 lp:7 kmem:15 dialout:20 cdrom:24 tape:26 audio:29 video:44 sgx:110 input:105 kvm:106 render:107 nogroup:65534; do
  echo "${g%%:*}:x:${g#*:}:"
done >"$root/etc/group"
printf 'ID=debian\nNAME="ember-ga test guest (systemd)"\n' >"$root/etc/os-release"
: >"$root/etc/machine-id"
cat >"$root/preinit" <<'EOF'
#!/bin/busybox sh
# PID 1 of the systemd guest: the image's modules (decompressed, no modules.dep for udev to use)
# loaded in order as /init does, then systemd in its place.
/bin/busybox mount -t proc proc /proc
while read -r m; do /bin/busybox insmod "/lib/modules/$m" 2>/dev/null; done </etc/modules.order
/bin/busybox umount /proc
exec /lib/systemd/systemd
EOF
chmod 755 "$root/preinit"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) >"$cache/layer.cpio.gz"
cat "$base" "$cache/layer.cpio.gz" >"$out.new"
mv "$out.new" "$out"
echo "$key" >"$cache/key"
rm -rf "$cache/debs" "$cache/root" "$cache/layer.cpio.gz"
say "systemd layer built: initrd $(du -h "$out" | cut -f1)"
echo "initrd=$out"
