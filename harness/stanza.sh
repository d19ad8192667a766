# shellcheck shell=sh
# bootrig's guest-side stanza: the functions the rendered stanza calls (src/patch/stanza.rs
# appends the calls for one plan). POSIX sh: runs under busybox ash, dash and bash, executed as
# an initramfs-tools hook or sourced by dracut and inline in /init, always inside a subshell so
# nothing leaks into the caller.
#
# The protocol (docs/ARCHITECTURE.md, "Guest protocol") goes to /dev/console itself: in a
# systemd initrd a hook's stdout ends in the journal, never on the serial port. Each protocol
# line is written in one write, and the kernel's console log level is lowered while the stanza
# runs so that kernel messages cannot split a line or the /proc/modules block; it is restored
# afterwards.

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

# Soft-RoCE: bootrig_rdma_rxe DEVICE NETDEV TOOLS-DIR SECONDS creates DEVICE over NETDEV and
# reports its ports, then proves the stack usable: ibv_devinfo, a verbs round trip
# (ibv_rc_pingpong) and an rdma_cm one (rping), each against NETDEV's own IPv4 address (rxe
# loops packets for a local address back), each bounded by SECONDS.
bootrig_rdma_rxe() {
	bootrig_dev=$1
	bootrig_net=$2
	bootrig_bin=$3
	bootrig_secs=$4
	bootrig_klines=$(dmesg 2>/dev/null | wc -l)
	bootrig_out=$("$bootrig_bin/rdma" link add "$bootrig_dev" type rxe netdev "$bootrig_net" 2>&1)
	bootrig_rc=$?
	if [ -n "$bootrig_out" ]; then
		printf '%s\n' "$bootrig_out" | bootrig_emit
	fi
	bootrig_say "rdma $bootrig_dev link-add $bootrig_net rc=$bootrig_rc"
	if [ "$bootrig_rc" -ne 0 ]; then
		# rdma_rxe says why ("failed to init crc32 algorithm") below the console log level.
		bootrig_say "kernel-log-begin rdma_rxe"
		dmesg 2>/dev/null | tail -n "+$((bootrig_klines + 1))" | bootrig_emit
		bootrig_say "kernel-log-end rdma_rxe"
	fi
	bootrig_port_dir=/sys/class/infiniband/$bootrig_dev/ports
	if [ ! -d "$bootrig_port_dir" ]; then
		bootrig_say "rdma $bootrig_dev missing"
		return 1
	fi
	# The port follows the netdev's carrier, a moment after the device appears.
	bootrig_i=0
	while [ "$(cat "$bootrig_port_dir/1/state" 2>/dev/null)" != "4: ACTIVE" ] && [ "$bootrig_i" -lt "$bootrig_secs" ]; do
		sleep 1
		bootrig_i=$((bootrig_i + 1))
	done
	bootrig_active=no
	for bootrig_port in "$bootrig_port_dir"/*; do
		bootrig_state=$(cat "$bootrig_port/state" 2>/dev/null)
		[ "${bootrig_state#*: }" = ACTIVE ] && bootrig_active=yes
		bootrig_say "rdma $bootrig_dev port ${bootrig_port##*/} ${bootrig_state#*: } link_layer=$(cat "$bootrig_port/link_layer" 2>/dev/null)"
	done
	[ "$bootrig_active" = yes ] || return 1
	bootrig_rdma_test "$bootrig_dev" devinfo "$bootrig_secs" "$bootrig_bin/ibv_devinfo" -d "$bootrig_dev"
	bootrig_ip=
	bootrig_out=$(ip -o -4 addr show dev "$bootrig_net" 2>/dev/null)
	while read -r _ _ bootrig_family bootrig_cidr _; do
		if [ "$bootrig_family" = inet ] && [ -z "$bootrig_ip" ]; then
			bootrig_ip=${bootrig_cidr%/*}
		fi
	done <<BOOTRIG_RDMA_ADDRS
$bootrig_out
BOOTRIG_RDMA_ADDRS
	if [ -z "$bootrig_ip" ]; then
		bootrig_say "rdma $bootrig_dev test verbs skipped no-address"
		bootrig_say "rdma $bootrig_dev test cm skipped no-address"
		return 1
	fi
	# RoCE v2 over IPv4 needs the GID that maps the address (::ffff:a.b.c.d).
	bootrig_gid=
	# shellcheck disable=SC2086 # split the address into its four numbers
	bootrig_want=$(
		IFS=.
		set -- $bootrig_ip
		printf '0000:0000:0000:0000:0000:ffff:%02x%02x:%02x%02x' "$1" "$2" "$3" "$4"
	)
	for bootrig_g in "$bootrig_port_dir/1/gids"/*; do
		if [ "$(cat "$bootrig_g" 2>/dev/null)" = "$bootrig_want" ] && [ -z "$bootrig_gid" ]; then
			bootrig_gid=${bootrig_g##*/}
		fi
	done
	bootrig_say "rdma $bootrig_dev gid ${bootrig_gid:-none} $bootrig_ip"
	"$bootrig_bin/ibv_rc_pingpong" -d "$bootrig_dev" -g "${bootrig_gid:-0}" -n 10 >/dev/null 2>&1 &
	bootrig_server=$!
	sleep 1
	bootrig_rdma_test "$bootrig_dev" verbs "$bootrig_secs" "$bootrig_bin/ibv_rc_pingpong" -d "$bootrig_dev" -g "${bootrig_gid:-0}" -n 10 "$bootrig_ip"
	kill "$bootrig_server" 2>/dev/null
	wait "$bootrig_server" 2>/dev/null
	"$bootrig_bin/rping" -s -a "$bootrig_ip" -C 3 >/dev/null 2>&1 &
	bootrig_server=$!
	sleep 1
	bootrig_rdma_test "$bootrig_dev" cm "$bootrig_secs" "$bootrig_bin/rping" -c -v -a "$bootrig_ip" -C 3
	kill "$bootrig_server" 2>/dev/null
	wait "$bootrig_server" 2>/dev/null
	return 0
}

# bootrig_rdma_test DEVICE CHECK SECONDS COMMAND...: shows the output, reports "rdma DEVICE test
# CHECK TOOL rc=N" (124 or 143: killed by timeout).
bootrig_rdma_test() {
	bootrig_tdev=$1
	bootrig_check=$2
	bootrig_tsecs=$3
	shift 3
	bootrig_out=$(timeout "$bootrig_tsecs" "$@" 2>&1)
	bootrig_rc=$?
	if [ -n "$bootrig_out" ]; then
		printf '%s\n' "$bootrig_out" | bootrig_emit
	fi
	bootrig_say "rdma $bootrig_tdev test $bootrig_check ${1##*/} rc=$bootrig_rc timeout=$bootrig_tsecs"
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
