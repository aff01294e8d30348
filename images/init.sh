#!/bin/sh
# PID 1 of a yank guest (github.com/yank-dev/yank/images).
#
# Console contract with the host:
#   YANK-INIT kernel=<uname -r>        first line, once the console is usable
#   YANK-MODULE-FAILED <path>          a module from /etc/yank/modules failed
#   YANK-READY                         qemu-ga holds the agent port open
#   YANK-AGENT-MISSING reason=<why>    instead of YANK-READY
# Kernel command line: yank.debug=1 traces this script (set -x);
# yank.shell=1 runs a shell on the console after boot.
# PID 1 must never exit (the kernel panics), so nothing here uses set -e.

export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root

# No redirections to /dev/null before devtmpfs is mounted: the only node
# that exists yet is the kernel's /dev/console.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mkdir -p /dev/pts /dev/shm
grep -qw devpts /proc/filesystems && mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp

echo "YANK-INIT kernel=$(uname -r)"
cmdline=" $(cat /proc/cmdline) "
case "$cmdline" in *" yank.debug=1 "*) set -x ;; esac

if [ -s /etc/yank/modules ]; then
	while read -r m; do
		insmod "$m" || echo "YANK-MODULE-FAILED $m"
	done </etc/yank/modules
fi

# The agent's port is the virtio-serial port QEMU named
# org.qemu.guest_agent.0; its device node is /dev/<sysfs dir name>
# (vport0p1, vport1p1, ... depending on the controller), there is no udev
# to make the /dev/virtio-ports/<name> link.
agent_port() {
	for n in /sys/class/virtio-ports/*/name; do
		[ -r "$n" ] || continue
		if [ "$(cat "$n")" = org.qemu.guest_agent.0 ]; then
			basename "${n%/name}"
			return 0
		fi
	done
	return 1
}

# holds_port PID DEV: is DEV among PID's open files?
holds_port() {
	for fd in /proc/"$1"/fd/*; do
		[ "$(readlink "$fd")" = "$2" ] && return 0
	done
	return 1
}

missing() {
	echo "YANK-AGENT-MISSING reason=$*"
}

port=
i=0
while [ $i -lt 100 ]; do
	port=$(agent_port) && [ -c "/dev/$port" ] && break
	port=
	sleep 0.1
	i=$((i + 1))
done

if [ -z "$port" ]; then
	missing "no virtio-serial port named org.qemu.guest_agent.0 after 10s" \
		"(ports: $(ls /sys/class/virtio-ports 2>/dev/null | tr '\n' ' '))"
else
	# Own session, stdio on a log file: neither qemu-ga nor the commands it
	# runs for guest-exec may hold the console, where a write could block.
	setsid qemu-ga -m virtio-serial -p "/dev/$port" -t /run -f /run/qemu-ga.pid \
		</dev/null >>/run/qemu-ga.log 2>&1 &
	agent=$!
	i=0
	while [ $i -lt 100 ]; do
		if ! kill -0 "$agent" 2>/dev/null; then
			missing "qemu-ga exited; log follows"
			cat /run/qemu-ga.log
			break
		fi
		if holds_port "$agent" "/dev/$port"; then
			echo "YANK-AGENT port=/dev/$port pid=$agent"
			echo YANK-READY
			break
		fi
		sleep 0.1
		i=$((i + 1))
	done
	[ $i -lt 100 ] || missing "qemu-ga did not open /dev/$port within 10s"
fi

while :; do
	case "$cmdline" in
	*" yank.shell=1 "*)
		setsid cttyhack sh -l
		sleep 1 # a console with no input must not spin
		;;
	*) sleep 3600 ;;
	esac
done
