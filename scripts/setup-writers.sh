#!/usr/bin/env bash
# Installs the independent programs the tests check xenwalk against: the dump
# writers QEMU >= 8.2 (dump-guest-memory: ELF and kdump-compressed, flattened and
# seekable; it also runs tests/xen_lab.rs's Xen host) and makedumpfile (kdump
# compressions, flattened format), and a headless browser (chromium) that renders
# `xenwalk map --html`. Debian packages, installed with apt-get only when a tool is
# missing, so a second run does nothing. Quiet unless something fails.
#
# Called by scripts/test.sh (and so by .ci/run); safe to run by hand. Needs root (or
# sudo) and the Debian archive. Exit status 0 when every writer is present afterwards,
# 1 when one is still missing (the tests then say NOT RUN, or fail under CI=true).
set -u

# QEMU 8.2 and later write the seekable kdump layout themselves (dump-guest-memory's
# kdump-raw-* formats); Debian 12's own QEMU is 7.2, which writes only the flattened
# one. On Debian 12 QEMU therefore comes from bookworm-backports (10.0.2, the version
# that wrote ../shared/dumps): the backports source is added (apt pins it below the
# release, so nothing else is taken from it) and only qemu-system-x86 is installed
# from it.
qemu_new_enough() {
    local v
    v=$(qemu-system-x86_64 --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
    [ -n "$v" ] && set -- $v && { [ "$1" -gt 8 ] || { [ "$1" -eq 8 ] && [ "$2" -ge 2 ]; }; }
}
codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
need=()
backports=()
if ! qemu_new_enough; then
    if [ "$codename" = bookworm ]; then backports+=(qemu-system-x86); else need+=(qemu-system-x86); fi
fi
command -v makedumpfile >/dev/null 2>&1 || need+=(makedumpfile)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && [ ${#backports[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-writers: ${need[*]} ${backports[*]} missing and this is not a Debian system (no apt-get): install them by hand" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        echo "setup-writers: ${need[*]} ${backports[*]} missing and not root (no passwordless sudo): run 'apt-get install ${need[*]} ${backports[*]}' as root (QEMU >= 8.2: from bookworm-backports on Debian 12)" >&2
        exit 1
    fi
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if [ ${#backports[@]} -gt 0 ]; then
    src=/etc/apt/sources.list.d/xenwalk-bookworm-backports.sources
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
        printf '%s\n' "# Added by xenwalk's scripts/setup-writers.sh: QEMU >= 8.2 for its tests." \
            "Types: deb" "URIs: http://deb.debian.org/debian" "Suites: bookworm-backports" "Components: main" \
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" | "${sudo[@]}" tee "$src" >/dev/null || {
            echo "setup-writers: could not write $src" >&2
            exit 1
        }
    fi
fi
# The package lists may be missing or stale on a fresh machine: update once, then install.
if ! { "${sudo[@]}" apt-get -qq update && \
       { [ ${#need[@]} -eq 0 ] || "${sudo[@]}" apt-get -qq -y --no-install-recommends install "${need[@]}"; } && \
       { [ ${#backports[@]} -eq 0 ] || \
         "${sudo[@]}" apt-get -qq -y --no-install-recommends -t bookworm-backports install "${backports[@]}"; }; \
     } >"$log" 2>&1; then
    echo "setup-writers: apt-get install ${need[*]} ${backports[*]} failed:" >&2
    tail -n 20 "$log" >&2
    exit 1
fi
qemu_new_enough && command -v makedumpfile >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1
