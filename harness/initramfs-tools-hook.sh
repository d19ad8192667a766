#!/bin/sh
# bootrig: loads the planned modules and brings up the network before the root is mounted.
PREREQ=""
prereqs() {
	echo "$PREREQ"
}
case "$1" in
prereqs)
	prereqs
	exit 0
	;;
esac
# BOOTRIG-HOOK-STANZA
exit 0
