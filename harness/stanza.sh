# shellcheck shell=sh
# bootrig's guest-side stanza: the functions the rendered stanza calls (src/patch/stanza.rs
# appends the calls for one plan). POSIX sh: runs under busybox ash, dash and bash, executed as
# an initramfs-tools hook or sourced by dracut and inline in /init, always inside a subshell so
# nothing leaks into the caller.
#
# The protocol (DESIGN.md "Guest protocol") goes to /dev/console itself: in a systemd initrd a
# hook's stdout ends in the journal, never on the serial port. Each protocol line is written in
# one write, and the kernel's console log level is lowered while the stanza runs so that kernel
# messages cannot split a line or the /proc/modules block; it is restored afterwards.

set +e

if (true >/dev/console) 2>/dev/null; then
	bootrig_console=yes
else
	bootrig_console=no
fi

# dracut images carry kmod without an insmod link; kmod acts by the name it is called as.
bootrig_insmod_cmd=insmod
if ! command -v insmod >/dev/null 2>&1 && command -v kmod >/dev/null 2>&1; then
	mkdir -p /run/bootrig 2>/dev/null
	ln -sf "$(command -v kmod)" /run/bootrig/insmod 2>/dev/null && bootrig_insmod_cmd=/run/bootrig/insmod
fi

# Copies stdin to the console (or stdout when there is no console).
bootrig_emit() {
	if [ "$bootrig_console" = yes ]; then
		cat >/dev/console
	else
		cat
	fi
}

# One protocol line.
bootrig_say() {
	printf 'BOOTRIG %s\n' "$*" | bootrig_emit
}

bootrig_begin() {
	bootrig_printk=$(cat /proc/sys/kernel/printk 2>/dev/null)
	echo 1 >/proc/sys/kernel/printk 2>/dev/null
	# The line before may be unfinished (initramfs-tools prints "Begin: ... " without a newline).
	printf '\nBOOTRIG begin\n' | bootrig_emit
}

# Whether /proc/modules lists module $1 (its name with underscores).
bootrig_loaded() {
	while read -r bootrig_m _; do
		[ "$bootrig_m" = "$1" ] && return 0
	done </proc/modules
	return 1
}

# bootrig_insmod NAME KERNEL-NAME PATH [PARAM...]
bootrig_insmod() {
	bootrig_name=$1
	bootrig_kname=$2
	bootrig_path=$3
	shift 3
	if bootrig_loaded "$bootrig_kname"; then
		bootrig_say "insmod $bootrig_name already-loaded"
		return 0
	fi
	bootrig_klines=$(dmesg 2>/dev/null | wc -l)
	bootrig_out=$("$bootrig_insmod_cmd" "$bootrig_path" "$@" 2>&1)
	bootrig_rc=$?
	if [ "$bootrig_rc" -ne 0 ] && bootrig_loaded "$bootrig_kname"; then
		# Loaded by someone else (udev) between the check and insmod.
		bootrig_say "insmod $bootrig_name already-loaded"
		return 0
	fi
	bootrig_say "insmod $bootrig_name rc=$bootrig_rc"
	if [ -n "$bootrig_out" ]; then
		printf '%s\n' "$bootrig_out" | bootrig_emit
	fi
	if [ "$bootrig_rc" -ne 0 ] || [ $# -gt 0 ]; then
		# The kernel says why ("Unknown symbol", "version magic") at a level the console log
		# level hides: show what it logged during this insmod. Also after a load with
		# parameters: an unknown one is only a warning ("ignored") and insmod succeeds.
		bootrig_say "kernel-log-begin $bootrig_name"
		dmesg 2>/dev/null | tail -n "+$((bootrig_klines + 1))" | bootrig_emit
		bootrig_say "kernel-log-end $bootrig_name"
	fi
}

bootrig_modules() {
	bootrig_say modules-begin
	bootrig_emit </proc/modules
	bootrig_say modules-end
}

# bootrig_wait_interface IFACE SECONDS: drivers may create the interface after insmod returns.
bootrig_wait_interface() {
	bootrig_i=0
	while [ ! -e "/sys/class/net/$1" ]; do
		if [ "$bootrig_i" -ge "$2" ]; then
			bootrig_say "interface $1 missing"
			return 1
		fi
		sleep 1
		bootrig_i=$((bootrig_i + 1))
	done
	ip link set lo up 2>/dev/null
	ip link set "$1" up
}

# Runs a command, shows its output, and reports its exit status as "dhcp IFACE CLIENT rc=N".
bootrig_run_dhcp() {
	bootrig_iface=$1
	bootrig_client=$2
	shift 2
	bootrig_out=$("$@" 2>&1)
	bootrig_rc=$?
	if [ -n "$bootrig_out" ]; then
		printf '%s\n' "$bootrig_out" | bootrig_emit
	fi
	bootrig_say "dhcp $bootrig_iface $bootrig_client rc=$bootrig_rc"
}

# bootrig_udhcpc IFACE SCRIPT [CLIENT-ID-HEX]
bootrig_udhcpc() {
	# IPoIB (ARPHRD_INFINIBAND, 32) cannot receive unicast replies before it has an address:
	# RFC 4390 asks for the broadcast flag.
	bootrig_broadcast=
	if [ "$(cat "/sys/class/net/$1/type" 2>/dev/null)" = 32 ]; then
		bootrig_broadcast=-B
	fi
	if [ -n "$3" ]; then
		bootrig_run_dhcp "$1" udhcpc udhcpc -i "$1" -s "$2" -n -q -t 5 -T 3 $bootrig_broadcast -x "0x3d:$3"
	else
		bootrig_run_dhcp "$1" udhcpc udhcpc -i "$1" -s "$2" -n -q -t 5 -T 3 $bootrig_broadcast
	fi
}

# bootrig_dhclient IFACE BINARY CONF SCRIPT LEASES
bootrig_dhclient() {
	mkdir -p "${5%/*}" /run 2>/dev/null
	bootrig_run_dhcp "$1" dhclient "$2" -1 -v -cf "$3" -sf "$4" -lf "$5" -pf "/run/dhclient.$1.pid" "$1"
}

# bootrig_static IFACE CIDR [GATEWAY]
bootrig_static() {
	ip addr add "$2" dev "$1"
	bootrig_rc=$?
	if [ "$bootrig_rc" -eq 0 ] && [ -n "$3" ]; then
		ip route add default via "$3" dev "$1"
		bootrig_rc=$?
	fi
	bootrig_say "static $1 rc=$bootrig_rc"
}

# One "addr IFACE CIDR" line per IPv4 address, from the kernel (ip -o: "2: eth0 inet A/N ...").
bootrig_addrs() {
	bootrig_found=no
	bootrig_out=$(ip -o -4 addr show dev "$1" 2>/dev/null)
	while read -r _ _ bootrig_family bootrig_cidr _; do
		if [ "$bootrig_family" = inet ]; then
			bootrig_say "addr $1 $bootrig_cidr"
			bootrig_found=yes
		fi
	done <<BOOTRIG_ADDRS
$bootrig_out
BOOTRIG_ADDRS
	if [ "$bootrig_found" = no ]; then
		bootrig_say "addr $1 none"
		case $1 in
		ib*) bootrig_ib_ports ;;
		esac
	fi
}

# The InfiniBand ports' states: IPoIB carries nothing until the subnet manager makes a port
# ACTIVE, which is the usual reason ib0 gets no address.
bootrig_ib_ports() {
	for bootrig_port in /sys/class/infiniband/*/ports/*; do
		[ -r "$bootrig_port/state" ] || continue
		bootrig_dev=${bootrig_port%/ports/*}
		bootrig_say "ib-port ${bootrig_dev##*/} ${bootrig_port##*/} state=$(cat "$bootrig_port/state") phys=$(cat "$bootrig_port/phys_state" 2>/dev/null)"
	done
}

bootrig_done() {
	bootrig_say "done"
	if [ -n "$bootrig_printk" ]; then
		# shellcheck disable=SC2086 # split "4 4 1 7" into fields
		set -- $bootrig_printk
		echo "$1" >/proc/sys/kernel/printk 2>/dev/null
	fi
}

# Interactive mode: a shell on the console for the harness's commands ([[expect.shell]]); when
# it exits, the machine powers off. The prompt is fixed so the harness can wait for it.
bootrig_shell() {
	bootrig_say "shell"
	PS1='BOOTRIG-SHELL# ' sh -i </dev/console >/dev/console 2>&1
}

# Test mode: power the machine off. The pause lets the serial port drain the lines above.
bootrig_poweroff() {
	sleep 1
	poweroff -f 2>/dev/null
	echo o >/proc/sysrq-trigger 2>/dev/null
	sleep 10
	bootrig_say poweroff-failed
}
