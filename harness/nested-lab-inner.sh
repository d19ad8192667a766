#!/bin/bash
# The nested lab, inside the outer VM (harness/nested-lab starts it, chrooted into this machine's
# root over 9p): real `bootrig run`s of lab scenarios on the stand-in e1000e, then the faults.
# Writes everything under OUT; one line per check in OUT/summary.txt, and OUT/ok when all passed.
#
#   nested-lab-inner.sh OUT BOOTRIG NIC_BDF HOST_NIC_BDF BLOCKED_BDF
set -u
out=$1
bootrig=$2
nic=$3
host_nic=$4
blocked=$5
# Temporary files (QEMU's sockets among them) in the outer VM's own tmpfs, not on the share.
export BOOTRIG_CACHE=$out/cache HOME=$out/home TMPDIR=/run/nested-lab-tmp
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p "$HOME" "$out/evidence" "$TMPDIR" "$out/runs"
ev=$out/evidence
kernel_dir=$(dirname "$(dirname "$(readlink -f "$0")")")/images/cache/current
kernel_dir=$(readlink -f "$kernel_dir")
t0=$(date +%s)
say() { echo "nested-lab inner: [$(($(date +%s) - t0))s] $*"; }
failed=0
check() { # check NAME CONDITION-STATUS DETAIL
	if [ "$2" = 0 ]; then
		echo "ok    $1: $3" >>"$out/summary.txt"
	else
		echo "FAIL  $1: $3" >>"$out/summary.txt"
		failed=1
	fi
	say "check $1: $([ "$2" = 0 ] && echo ok || echo FAIL) ($3)"
}
driver_of() { basename "$(readlink "/sys/bus/pci/devices/$1/driver" 2>/dev/null)" 2>/dev/null; }

: >"$out/summary.txt"
# The outer VM's root has the kernel's default 8 MiB memlock limit (hard too): bootrig run
# raises its own for the guest's pinned memory, as libvirt does; the pass run proves it.
echo "soft $(ulimit -S -l) hard $(ulimit -H -l)" >"$ev/memlock-before.txt"
say "outer kernel $(uname -r); IOMMU groups:"
for g in /sys/kernel/iommu_groups/*; do
	devices=
	for d in "$g"/devices/*; do
		[ -e "$d" ] && devices="$devices${d##*/} "
	done
	echo "group ${g##*/}: $devices"
done | tee "$ev/iommu-groups.txt"
lspci -nn >"$ev/lspci.txt" 2>&1 || true

# The outer host needs the e1000 behind the bridge: its default route (the "office" network).
host_if=
for n in "/sys/bus/pci/devices/$host_nic/net"/*; do
	[ -e "$n" ] && { host_if=${n##*/}; break; }
done
if [ -n "$host_if" ]; then
	ip link set "$host_if" up
	ip addr add 10.0.3.15/24 dev "$host_if"
	ip route add default via 10.0.3.2 dev "$host_if"
fi
ip route >"$ev/outer-routes.txt" 2>&1
nic_driver_before=$(driver_of "$nic")
echo "$nic_driver_before" >"$ev/driver-before.txt"
check outer-topology "$([ "$nic_driver_before" = e1000e ] && [ -n "$host_if" ] && echo 0 || echo 1)" \
	"$nic on ${nic_driver_before:-no driver}; default route on ${host_if:-nothing} ($host_nic)"

cat >"$out/inventory.toml" <<EOF
# The nested lab's inventory: the outer VM's e1000e is the stand-in adapter.
[lab]
boot_root = "$out/tftp"
state_dir = "$out/state"

[adapters.nic0]
bdf = "$nic"
stand_in = true

[adapters.blocked0]
bdf = "$blocked"
stand_in = true
EOF
# The lock-contention run gives up early instead of waiting for the holder's whole boot.
sed 's/^state_dir = .*/&\nlock_wait = "15s"/' "$out/inventory.toml" >"$out/inventory-short-wait.toml"

scenario() { # scenario FILE ADAPTER NAME
	cat >"$1" <<EOF
name = "$3"
[kernel]
image = "$kernel_dir/vmlinuz"
modules = "$kernel_dir"
[initrd]
base = "busybox"
load = ["e1000e"]
order = "resolve"
[network]
interface = "eth0"
dhcp = "udhcpc"
[hardware]
adapter = "$2"
[boot]
firmware = "bios"
memory = 512
[expect]
address = "10.0.2.0/24"
timeout = "420s"
phases = { ipxe-dhcp = "300s" }
EOF
}
mkdir -p "$out/scenarios"
scenario "$out/scenarios/nic0-stand-in.toml" nic0 "nested lab: e1000e stand-in netbooting through its own ROM over VFIO"
scenario "$out/scenarios/nic0-killed.toml" nic0 "nested lab: the same, killed with -9 mid-boot"
scenario "$out/scenarios/nic0-second.toml" nic0 "nested lab: a second run on the same adapter"
scenario "$out/scenarios/blocked0.toml" blocked0 "nested lab: an adapter sharing its group with the host's route"

# Evidence while a run holds the adapter: the record, the lock's holder, the driver, /dev/vfio.
watch_bound() { # watch_bound TAG PID: until PID (the run) ends
	local i=0
	while [ $i -lt 600 ] && kill -0 "$2" 2>/dev/null; do
		if [ -f "$out/state/$nic.json" ] && [ "$(driver_of "$nic")" = vfio-pci ]; then
			cp "$out/state/$nic.json" "$ev/$1-record.json"
			cp "$out/state/$nic.lock" "$ev/$1-lock.json" 2>/dev/null
			driver_of "$nic" >"$ev/$1-driver-during.txt"
			ls -l /dev/vfio >"$ev/$1-dev-vfio.txt" 2>&1
			return 0
		fi
		sleep 0.2
		i=$((i + 1))
	done
	return 1
}

say "1. the pass run: bootrig run on nic0 (stand-in), boot files under boot_root"
s=$(date +%s)
"$bootrig" run --jobs 1 --inventory "$out/inventory.toml" --out "$out/runs/pass" \
	"$out/scenarios/nic0-stand-in.toml" >"$out/runs/pass.stdout" 2>"$out/runs/pass.stderr" &
run=$!
watch_bound pass "$run" &
watcher=$!
wait "$run"
rc=$?
echo "$(($(date +%s) - s))" >"$ev/pass-seconds.txt"
kill "$watcher" 2>/dev/null
wait "$watcher" 2>/dev/null
driver_of "$nic" >"$ev/pass-driver-after.txt"
check pass-run "$rc" "bootrig run exit $rc in $(cat "$ev/pass-seconds.txt") s (stdout: runs/pass.stdout)"
raised=1
grep -qs "vfio: locked-memory soft and hard limits raised from 8192 KiB (hard 8192 KiB)" "$out/runs/pass.stderr" && raised=0
check memlock-raised "$raised" "bootrig run raised RLIMIT_MEMLOCK itself from $(cat "$ev/memlock-before.txt"): $([ $raised = 0 ] && echo yes || echo no)"
check pass-restored "$([ "$(driver_of "$nic")" = e1000e ] && echo 0 || echo 1)" \
	"$nic back on $(driver_of "$nic")"
cp -r "$out/tftp" "$ev/boot-root-after-pass" 2>/dev/null

say "2. faults: kill -9 mid-boot, a second run waiting on the lock, then bootrig vfio restore"

"$bootrig" run --jobs 1 --inventory "$out/inventory.toml" --out "$out/runs/killed" \
	"$out/scenarios/nic0-killed.toml" >"$out/runs/killed.stdout" 2>"$out/runs/killed.stderr" &
victim=$!
watch_bound killed "$victim" &
watcher=$!
echo "$victim" >"$ev/killed-pid.txt"
if ! wait "$watcher"; then
	check killed-run-bound 1 "the run to kill never bound $nic (see runs/killed.stderr)"
fi
# The inner QEMU is up (its command line written) before the kill: the kill lands mid-boot.
i=0
while [ ! -f "$out/runs/killed/nic0-killed/qemu.cmdline" ] && [ $i -lt 300 ] && kill -0 "$victim" 2>/dev/null; do
	sleep 0.2
	i=$((i + 1))
done
sleep 5
s=$(date +%s)
"$bootrig" run --jobs 1 --inventory "$out/inventory-short-wait.toml" --out "$out/runs/second" \
	"$out/scenarios/nic0-second.toml" >"$out/runs/second.stdout" 2>"$out/runs/second.stderr"
rc=$?
waited=$(($(date +%s) - s))
held=1
grep -rqs "in use by another bootrig run (pid $victim " "$out/runs/second" && held=0
# Said once, when the wait starts, not only when it gives up.
said=$(grep -c "waiting for adapter nic0 (0000:00:03.0), held by pid $victim running scenario \"nic0-killed\" since " "$out/runs/second.stderr")
check lock-contention "$([ $rc -ne 0 ] && [ $held = 0 ] && [ "$said" = 1 ] && echo 0 || echo 1)" \
	"second run exit $rc after ${waited}s, names the holder pid $victim: $([ $held = 0 ] && echo yes || echo no); said it waits: $said time(s)"
kill -9 "$victim"
wait "$victim" 2>/dev/null
sleep 1
driver_of "$nic" >"$ev/killed-driver-after-kill.txt"
check kill-leaves-record "$([ -f "$out/state/$nic.json" ] && [ "$(driver_of "$nic")" = vfio-pci ] && echo 0 || echo 1)" \
	"after kill -9: driver $(driver_of "$nic"), record $([ -f "$out/state/$nic.json" ] && echo kept || echo missing)"
"$bootrig" vfio restore --state-dir "$out/state" >"$ev/restore.stdout" 2>"$ev/restore.stderr"
rc=$?
driver_of "$nic" >"$ev/restored-driver.txt"
check vfio-restore "$([ $rc = 0 ] && [ "$(driver_of "$nic")" = e1000e ] && [ ! -f "$out/state/$nic.json" ] && echo 0 || echo 1)" \
	"bootrig vfio restore exit $rc; $nic on $(driver_of "$nic")"

say "3. a group member the host needs is refused"
"$bootrig" run --jobs 1 --inventory "$out/inventory.toml" --out "$out/runs/blocked" \
	"$out/scenarios/blocked0.toml" >"$out/runs/blocked.stdout" 2>"$out/runs/blocked.stderr"
rc=$?
refused=1
grep -rqs "carries the host's default route" "$out/runs/blocked" && refused=0
check group-refused "$([ $rc -ne 0 ] && [ $refused = 0 ] && [ "$(driver_of "$host_nic")" = e1000 ] && echo 0 || echo 1)" \
	"exit $rc; refusal names the route: $([ $refused = 0 ] && echo yes || echo no); $host_nic on $(driver_of "$host_nic")"

say "done in $(($(date +%s) - t0)) s"
echo "inner script: $(($(date +%s) - t0)) s" >>"$out/summary.txt"
[ $failed = 0 ] && touch "$out/ok"
sync
exit $failed
