#!/bin/sh
# bootrig busybox base: /init of the minimal initrd bootrig makes from a static busybox
# (src/patch/base.rs). It mounts what the stanza needs, runs the stanza where the marker line
# is, then gives a shell on the console (powers off when the shell ends).
export PATH=/sbin:/usr/sbin:/bin:/usr/bin

mkdir -p /proc /sys /dev /run /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Reopen the console on devtmpfs: without a /dev/console node the kernel gave init none.
exec </dev/console >/dev/console 2>&1
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts

# BOOTRIG-STANZA

echo "bootrig: base init done; starting a shell (exit to power off)"
setsid cttyhack sh
poweroff -f
