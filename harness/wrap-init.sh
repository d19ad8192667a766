#!@BOOTRIG_BUSYBOX@ sh
# shellcheck shell=sh
# bootrig's wrapper init (the "wrap" flavor, src/patch/wrap.rs): put where the kernel looks for
# init (/init, or rdinit=), in front of an init bootrig cannot edit (a binary such as
# tiny-initramfs, busybox init, u-root, systemd). It mounts what the stanza needs, runs the stanza,
# leaves the mounts as the kernel left them, and execs the original init as PID 1 with the same
# arguments and environment.
#
# Runs under bootrig's own busybox (the #! line): the image's tools are never assumed. Every command
# goes through it by path, and PATH is never set, so the original init gets the kernel's
# environment and nothing of ours.

# Set by bootrig build: where the original init was moved, and bootrig's busybox.
bootrig_original=@BOOTRIG_ORIGINAL@
bootrig_busybox=@BOOTRIG_BUSYBOX@

bootrig_bb() {
	"$bootrig_busybox" "$@"
}

# Run by something other than the kernel (a re-exec, a chroot): be the original at once.
if [ "$$" -ne 1 ]; then
	# shellcheck disable=SC3038 # busybox ash has exec -a; argv[0] as we were called
	exec -a "$0" "$bootrig_original" "$@"
fi

# What this script mounted and created, newest first, to undo before the hand-over.
bootrig_mounted=
bootrig_made=

# bootrig_mount TYPE DIR: mounts TYPE on DIR unless something is mounted there already.
bootrig_mount() {
	if [ -r /proc/mounts ] && bootrig_bb grep -q "^[^ ]* $2 " /proc/mounts; then
		return 0
	fi
	if [ ! -d "$2" ]; then
		bootrig_bb mkdir -p "$2" && bootrig_made="$2 $bootrig_made"
	fi
	bootrig_bb mount -t "$1" "$1" "$2" && bootrig_mounted="$2 $bootrig_mounted"
}

bootrig_mount proc /proc
bootrig_mount sysfs /sys
bootrig_mount devtmpfs /dev

# The environment the kernel gave us, from before this shell added to it (busybox ash exports
# PATH, PWD and SHLVL of its own).
bootrig_env=$(bootrig_bb tr '\0' '\n' <"/proc/$$/environ")

# Without a /dev/console node in the image the kernel starts init with no stdin, stdout or
# stderr: give the stanza and the original init the console, as the kernel would have.
[ -e "/proc/$$/fd/0" ] || exec </dev/console
[ -e "/proc/$$/fd/1" ] || exec >/dev/console
[ -e "/proc/$$/fd/2" ] || exec 2>/dev/console

# BOOTRIG-WRAP-STANZA

# Hand-over. The original init expects the machine as the kernel leaves it: an init that mounts
# /proc, /sys or /dev itself fails on EBUSY if they are mounted already (tiny-initramfs panics,
# "Could not mount /proc"). So everything this script mounted is unmounted (lazily when busy: our
# console descriptors are open on /dev) and the directories it made are removed. The loaded
# modules and the configured network stay: they are the point.
for bootrig_dir in $bootrig_mounted; do
	bootrig_bb umount "$bootrig_dir" 2>/dev/null || bootrig_bb umount -l "$bootrig_dir"
done
for bootrig_dir in $bootrig_made; do
	bootrig_bb rmdir "$bootrig_dir" 2>/dev/null
done
for bootrig_var in PATH PWD OLDPWD SHLVL; do
	bootrig_line=$(printf '%s\n' "$bootrig_env" | bootrig_bb grep -m 1 "^$bootrig_var=")
	if [ -n "$bootrig_line" ]; then
		export "${bootrig_line?}"
	else
		unset "$bootrig_var"
	fi
done

# shellcheck disable=SC3038 # busybox ash has exec -a: argv[0] as the kernel gave it (busybox
# init picks its applet by that name)
exec -a "$0" "$bootrig_original" "$@"
