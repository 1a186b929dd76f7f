#!/bin/busybox sh
# /init of the test guest (busybox sh, no udev): mounts, loads the modules in dependency order,
# mounts the virtio disk, starts a writer that stamps the guest clock into a file on it (the
# freeze proof), and runs ember-ga under a supervisor loop that restarts it whenever it exits.
/bin/busybox --install -s
export PATH=/usr/bin:/bin:/sbin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
hostname ember-ga-vm
echo "init: up after $(cut -d' ' -f1 /proc/uptime) s" >/dev/console

while read -r m; do
  insmod "/lib/modules/$m" 2>/dev/console || echo "init: insmod $m failed" >/dev/console
done </etc/modules.order
ip link set lo up 2>/dev/null

# The disk: /dev/vda, ext4, made on the host. Wait for it (the driver probes asynchronously).
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do usleep 50000; i=$((i + 1)); done
mount -t ext4 /dev/vda /mnt/data || echo "init: cannot mount /dev/vda" >/dev/console

# The writer: every 100 ms, the guest's uptime appended to /mnt/data/ticks. The stamp is taken
# before the write, so while the filesystem is frozen the write blocks and the next stamp after
# the thaw shows a gap as long as the freeze.
(
  while :; do
    read -r up _ </proc/uptime
    echo "$up" >>/mnt/data/ticks
    usleep 100000
  done
) &
echo $! >/run/writer.pid

# The agent's CPU use, once a second on the console, read by the host (which also tells it the
# agent's pid): "agent-cpu PID UTIME+STIME-TICKS GUEST-UPTIME". It measures the agent from the
# outside, so it works whatever command groups the agent has.
(
  while :; do
    pid=$(cat /run/agent.pid 2>/dev/null)
    if [ -n "$pid" ] && [ -r "/proc/$pid/stat" ]; then
      set -- $(cat "/proc/$pid/stat")
      read -r up _ </proc/uptime
      echo "agent-cpu $pid $((${14} + ${15})) $up" >/dev/console
    fi
    sleep 1
  done
) &

# Power off, halt and reboot: the image's /sbin/shutdown (what guest-shutdown runs) signals
# /init as busybox's poweroff, halt and reboot do: USR2, USR1, TERM. /init stops the writer and
# the agent, unmounts the disk (so it is clean after a power-off) and asks the kernel.
down() {
  echo "init: $1 requested" >/dev/console
  kill "$(cat /run/writer.pid)" 2>/dev/null
  if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do usleep 50000; i=$((i + 1)); done
  fi
  i=0
  while ! umount /mnt/data 2>/dev/null && [ $i -lt 100 ]; do usleep 50000; i=$((i + 1)); done
  if grep -q ' /mnt/data ' /proc/mounts; then
    echo "init: cannot unmount /mnt/data; read-only instead" >/dev/console
    mount -o remount,ro /mnt/data
  fi
  echo "init: $1 now" >/dev/console
  "$1" -f
}
trap 'down poweroff' USR2
trap 'down halt' USR1
trap 'down reboot' TERM

# The supervisor: no -p, the agent finds both ports, org.guest-agent.0 (phoenix) and
# org.qemu.guest_agent.0 (qemu-ga), by their names under /sys/class/virtio-ports.
# The host picks the auto-thaw and host-gone timeouts on the kernel command line (the kernel
# hands unknown name=value parameters to init as environment variables).
echo "init: starting ember-ga after $(cut -d' ' -f1 /proc/uptime) s" >/dev/console
while :; do
  node /opt/ember-ga/lib/node_modules/ember-ga/dist/lib/cli.js --freeze-timeout "${ember_freeze_timeout:-600}" --host-gone-timeout "${ember_host_gone_timeout:-60}" 2>/dev/console &
  pid=$!
  echo "$pid" >/run/agent.pid
  echo "init: ember-ga started, pid $pid" >/dev/console
  wait "$pid"
  echo "init: ember-ga (pid $pid) exited with $?; restarting" >/dev/console
  sleep 1
done
