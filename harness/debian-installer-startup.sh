#!/bin/sh
# bootrig: run by debian-installer-startup (executable, so executed, not sourced).
# BOOTRIG-HOOK-STANZA
exit 0
