#!/usr/bin/env bash
# Installs the independent programs the tests check xenwalk against: the dump
# writers QEMU (dump-guest-memory: ELF and kdump-compressed) and makedumpfile (kdump
# compressions, flattened format), and a headless browser (chromium) that renders
# `xenwalk map --html`. Debian packages, installed with apt-get only when a tool is
# missing, so a second run does nothing. Quiet unless something fails.
#
# Called by scripts/test.sh (and so by .ci/run); safe to run by hand. Needs root (or
# sudo) and the Debian archive. Exit status 0 when every writer is present afterwards,
# 1 when one is still missing (the tests then say NOT RUN, or fail under CI=true).
set -u

need=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
command -v makedumpfile >/dev/null 2>&1 || need+=(makedumpfile)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-writers: ${need[*]} missing and this is not a Debian system (no apt-get): install them by hand" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        echo "setup-writers: ${need[*]} missing and not root (no passwordless sudo): run 'apt-get install ${need[*]}' as root" >&2
        exit 1
    fi
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
# The package lists may be missing or stale on a fresh machine: update once, then install.
if ! { "${sudo[@]}" apt-get -qq update && \
       "${sudo[@]}" apt-get -qq -y --no-install-recommends install "${need[@]}"; } >"$log" 2>&1; then
    echo "setup-writers: apt-get install ${need[*]} failed:" >&2
    tail -n 20 "$log" >&2
    exit 1
fi
command -v qemu-system-x86_64 >/dev/null 2>&1 && command -v makedumpfile >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1
