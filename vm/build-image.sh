#!/usr/bin/env bash
# Builds the guest for `npm run test:vm`: a Debian kernel and an initramfs holding busybox, the
# modules the guest needs, node with its libraries, and ember-ga installed from `npm pack` of
# this tree. Nothing is installed on the host except the tools (qemu-system-x86, cpio, kmod,
# xz-utils, e2fsprogs); the kernel and busybox are `apt-get download`ed and unpacked.
#
#   vm/build-image.sh CACHE_DIR     prints "kernel=PATH" and "initrd=PATH" on its last two lines
#
# The image is rebuilt only when its key changes: the kernel and busybox package versions, the
# node binary, the packed agent, and this script and the guest's init (all hashed).
#
# It also installs libvirt for the libvirt guest (vm/libvirt.ts runs the daemons privately).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=$(mkdir -p "${1:?usage: build-image.sh CACHE_DIR}" && cd "$1" && pwd)
node_bin=${NODE_BIN:-$(command -v node)}
node_bin=$(readlink -f "$node_bin")
say() { echo "vm-image: $*" >&2; }

# --- host tools ---------------------------------------------------------------------------
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have qemu-system-x86_64 || need+=(qemu-system-x86)
have cpio || need+=(cpio)
have depmod || need+=(kmod)
have xz || need+=(xz-utils)
have mkfs.ext4 || need+=(e2fsprogs)
have debugfs || need+=(e2fsprogs)
have e2fsck || need+=(e2fsprogs)
have unshare || need+=(util-linux)
have libvirtd || need+=(libvirt-daemon)
have virtlogd || need+=(libvirt-daemon)
compgen -G '/usr/lib/*/libvirt/connection-driver/libvirt_driver_qemu.so' >/dev/null || need+=(libvirt-daemon-driver-qemu)
have virsh || need+=(libvirt-clients)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { say "missing ${need[*]}; run as root to install them"; exit 1; }
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "${need[@]}" >"$cache/apt.log" 2>&1; then
    apt-get update >>"$cache/apt.log" 2>&1
    apt-get install -y --no-install-recommends "${need[@]}" >>"$cache/apt.log" 2>&1 ||
      { cat "$cache/apt.log" >&2; exit 1; }
  fi
fi

# --- guest packages: the kernel linux-image-amd64 depends on today, and busybox-static ------
# `apt-cache depends` names the versioned kernel package; security updates change it, so it is
# resolved on every run (a cheap local lookup) and the download is cached by file name.
resolve() { # PKG -> "NAME VERSION" of what PKG resolves to (itself, or linux-image-amd64's kernel)
  apt-cache show --no-all-versions "$1" 2>/dev/null | awk '/^Version:/ {print $2; exit}'
}
kernel_pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$kernel_pkg" ]; then
  apt-get update >/dev/null 2>&1
  kernel_pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
[ -n "$kernel_pkg" ] || { say "cannot resolve the kernel package of linux-image-amd64"; exit 1; }
kernel_ver=$(resolve "$kernel_pkg")
busybox_ver=$(resolve busybox-static)
mkdir -p "$cache/debs"
fetch() { # PKG VERSION -> path of the .deb in the cache
  local f
  f=$(ls "$cache/debs/$1_"*.deb 2>/dev/null | grep -F "${2#*:}_" | head -1 || true)
  if [ -z "$f" ]; then
    say "downloading $1 $2"
    (cd "$cache/debs" && apt-get download "$1=$2" >/dev/null 2>&1) ||
      (apt-get update >/dev/null 2>&1 && cd "$cache/debs" && apt-get download "$1=$2" >/dev/null)
    f=$(ls "$cache/debs/$1_"*.deb | grep -F "${2#*:}_" | head -1)
  fi
  echo "$f"
}
kernel_deb=$(fetch "$kernel_pkg" "$kernel_ver")
busybox_deb=$(fetch busybox-static "$busybox_ver")

# --- the agent: npm pack of this tree ---------------------------------------------------------
rm -rf "$cache/pack" && mkdir -p "$cache/pack"
(cd "$repo" && npm pack --silent --pack-destination "$cache/pack" >/dev/null)
tgz=$(ls "$cache/pack"/ember-ga-*.tgz)

key=$( {
  echo "$kernel_pkg $kernel_ver busybox $busybox_ver"
  sha256sum "$node_bin" "$tgz" "$here/build-image.sh" "$here/init.sh" | awk '{print $1}'
} | sha256sum | awk '{print $1}')
out="$cache/image"
if [ -f "$out/key" ] && [ "$(cat "$out/key")" = "$key" ] && [ -f "$out/initrd.gz" ] && [ -f "$out/vmlinuz" ]; then
  say "image up to date ($kernel_pkg $kernel_ver, key ${key:0:12})"
  echo "kernel=$out/vmlinuz"
  echo "initrd=$out/initrd.gz"
  exit 0
fi
say "building image ($kernel_pkg $kernel_ver, node $("$node_bin" -v), $(basename "$tgz"))"

work="$cache/work"
rm -rf "$work" && mkdir -p "$work/kernel" "$work/busybox" "$work/root"
dpkg-deb -x "$kernel_deb" "$work/kernel"
dpkg-deb -x "$busybox_deb" "$work/busybox"
kver=$(ls "$work/kernel/lib/modules")
depmod -b "$work/kernel" "$kver"

# Modules in load order: modprobe --show-depends resolves each one's dependencies from
# modules.dep and prints them first ("builtin NAME" for the ones compiled in).
root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,mnt/data,lib/modules,etc}
: >"$root/etc/modules.order"
for m in virtio_pci virtio_console virtio_blk virtio_net crc32c_generic ext4 veth; do
  modprobe -d "$work/kernel" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
  name=$(basename "$ko"); name=${name%.xz}; name=${name%.zst}; name=${name%.gz}
  case "$ko" in
    *.xz) xz -dc "$ko" >"$root/lib/modules/$name" ;;
    *.zst) zstd -qdc "$ko" >"$root/lib/modules/$name" ;;
    *.gz) gzip -dc "$ko" >"$root/lib/modules/$name" ;;
    *) cp "$ko" "$root/lib/modules/$name" ;;
  esac
  echo "$name" >>"$root/etc/modules.order"
done
[ -s "$root/etc/modules.order" ] || { say "no modules resolved"; exit 1; }

cp "$work/busybox/bin/busybox" "$root/bin/busybox"

# The agent, installed from the tarball into a staging prefix the way a user installs it: the
# tarball's x64 prebuild when it has one (prepack makes them), else compiled by the host's
# compiler (same arch as the guest). Then node and every library ldd lists for node and addon.
stage="$root/opt/ember-ga"
say "installing $(basename "$tgz") into the image"
npm install -g --prefix "$stage" "$tgz" --prefer-offline --no-audit --no-fund --loglevel=error >"$work/npm.log" 2>&1 ||
  { cat "$work/npm.log" >&2; exit 1; }
[ -f "$stage/lib/node_modules/ember-ga/dist/lib/cli.js" ] || { say "npm install left no cli.js"; exit 1; }
addon=$(cd "$stage/lib/node_modules/ember-ga" && node -e 'process.stdout.write(require("node-gyp-build").path("."))')
say "the guest loads ${addon#"$stage/lib/node_modules/ember-ga/"}"
mkdir -p "$root/usr/bin"
cp "$node_bin" "$root/usr/bin/node"
{
  ldd "$node_bin"
  find "$stage" -name '*.node' -exec ldd {} \;
} | awk '/=> \// {print $3} /^\t\// {print $1}' | sort -u | while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
# the loader is also reached through /lib64 on x86-64
[ -e "$root/lib64" ] || ln -s usr/lib64 "$root/lib64" 2>/dev/null || true

cp "$here/init.sh" "$root/init"
chmod 755 "$root/init"
echo "ember-ga-vm" >"$root/etc/hostname"

# A user whose password the libvirt guest's `virsh set-user-password` changes, and chpasswd(8),
# which qemu-ga's guest-set-user-password runs and busybox lacks: "user:password" lines on
# stdin, hashed with busybox's mkpasswd (-e: already hashed), into /etc/shadow.
printf 'root:x:0:0:root:/root:/bin/sh\nember:x:1000:1000:ember-ga test user:/home/ember:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\nember:x:1000:\n' >"$root/etc/group"
printf 'root:*:19000:0:99999:7:::\nember:!:19000:0:99999:7:::\n' >"$root/etc/shadow"
chmod 600 "$root/etc/shadow"
cat >"$root/usr/sbin/chpasswd" <<'EOF'
#!/bin/busybox sh
crypted=
[ "$1" = -e ] && crypted=1
while IFS= read -r line || [ -n "$line" ]; do
  user=${line%%:*}
  pass=${line#*:}
  grep -q "^$user:" /etc/shadow || { echo "chpasswd: user '$user' does not exist" >&2; exit 1; }
  if [ -n "$crypted" ]; then hash=$pass; else hash=$(mkpasswd -m sha512 -- "$pass") || exit 1; fi
  awk -F: -v OFS=: -v u="$user" -v h="$hash" '$1 == u { $2 = h } { print }' /etc/shadow >/etc/shadow.new &&
    chmod 600 /etc/shadow.new && mv /etc/shadow.new /etc/shadow || exit 1
done
EOF
chmod 755 "$root/usr/sbin/chpasswd"

# shutdown(8), which qemu-ga's guest-shutdown runs (`shutdown -h -P|-H|-r +0 MESSAGE`) and busybox
# lacks: it signals /init as busybox's poweroff, halt and reboot do, and /init does the rest.
cat >"$root/sbin/shutdown" <<'EOF'
#!/bin/busybox sh
sig=USR2
for a in "$@"; do
  case "$a" in
    -P) sig=USR2 ;;
    -H) sig=USR1 ;;
    -r) sig=TERM ;;
    -h | +0 | now) ;;
    -*) echo "shutdown: unknown option $a" >&2; exit 1 ;;
  esac
done
echo "shutdown: $* (SIG$sig to /init)" >/dev/console
kill -"$sig" 1
EOF
chmod 755 "$root/sbin/shutdown"

rm -rf "$out.new" && mkdir -p "$out.new"
cp "$work/kernel/boot/vmlinuz-$kver" "$out.new/vmlinuz"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) >"$out.new/initrd.gz"
echo "$key" >"$out.new/key"
echo "$kernel_pkg $kernel_ver ($kver)" >"$out.new/kernel-version"
rm -rf "$out" && mv "$out.new" "$out"
rm -rf "$work"
say "image built: initrd $(du -h "$out/initrd.gz" | cut -f1)"
echo "kernel=$out/vmlinuz"
echo "initrd=$out/initrd.gz"
