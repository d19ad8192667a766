#!/bin/sh
# bootrig: sourced by dracut's cmdline hook, before udev starts.
# BOOTRIG-HOOK-STANZA
