#!/usr/bin/env bash
# Installs the independent programs the tests check xenwalk against: the dump
# writers QEMU >= 8.2 (dump-guest-memory: ELF and kdump-compressed, flattened and
# seekable; it also runs tests/xen_lab.rs's Xen host) and makedumpfile (kdump
# compressions, flattened format), and a headless browser (chromium) that renders
# `xenwalk map --html`. Debian packages, installed with apt-get only when a tool is
# missing, so a second run does nothing. Quiet unless something fails.
#
# The machine's configuration is left as it is: apt-get reads a private sources list
# and keeps private package lists (in $XENWALK_APT_DIR, default /var/tmp/xenwalk-apt),
# built from the Debian mirror the machine's own apt sources already use (the entry
# whose suite is the release's codename), plus that mirror's <codename>-backports
# suite. Nothing is written under /etc/apt or /var/lib/apt/lists; only the packages
# themselves are installed. No mirror is named here: a machine whose sources hold no
# Debian entry for its release gets a message and exit status 1.
#
# Each missing package is installed by its own apt-get call, so one that cannot be
# installed (chromium where the distribution ships it only as a snap, say) does not
# stop the others; each failure is reported, and the tests that need it say NOT RUN.
#
# Called by scripts/test.sh (and so by .ci/run); safe to run by hand. Needs root (or
# sudo) and the Debian archive. Exit status 0 when every tool is present afterwards,
# 1 when one is still missing (the tests then say NOT RUN, or fail under CI=true).
#
# XENWALK_APT_SIMULATE=1 passes -s to apt-get install (nothing is installed, what
# would be is printed) and treats every package as missing: a check of the apt part
# on a machine that already has everything.
set -u

# QEMU 8.2 and later write the seekable kdump layout themselves (dump-guest-memory's
# kdump-raw-* formats); Debian 12's own QEMU is 7.2, which writes only the flattened
# one. On Debian 12 QEMU therefore comes from bookworm-backports (10.0.2, the version
# that wrote ../shared/dumps): only qemu-system-x86 is installed from it (`-t`), and
# apt's default priority for backports keeps everything else from the release.
qemu_new_enough() {
    local v
    v=$(qemu-system-x86_64 --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
    # shellcheck disable=SC2086 # two words on purpose
    [ -n "$v" ] && set -- $v && { [ "$1" -gt 8 ] || { [ "$1" -eq 8 ] && [ "$2" -ge 2 ]; }; }
}
simulate=${XENWALK_APT_SIMULATE:-0}
# shellcheck disable=SC1091 # the machine's own file
codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
need=()
backports=()
if [ "$simulate" = 1 ] || ! qemu_new_enough; then
    if [ "$codename" = bookworm ]; then backports+=(qemu-system-x86); else need+=(qemu-system-x86); fi
fi
{ [ "$simulate" != 1 ] && command -v makedumpfile >/dev/null 2>&1; } || need+=(makedumpfile)
{ [ "$simulate" != 1 ] && command -v chromium >/dev/null 2>&1; } || need+=(chromium)
[ ${#need[@]} -eq 0 ] && [ ${#backports[@]} -eq 0 ] && exit 0
missing="${need[*]} ${backports[*]}"

if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-writers: ${missing} missing and this is not a Debian system (no apt-get): install them by hand" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    elif [ "$simulate" != 1 ]; then
        echo "setup-writers: ${missing} missing and not root (no passwordless sudo): run 'apt-get install ${missing}' as root (QEMU >= 8.2: from ${codename:-the release}-backports on Debian 12)" >&2
        exit 1
    fi
fi

# The machine's Debian entries for its release (debian_entry, "URI|suite|components|
# signed-by" per line), one sources.list line each (apt_line) and apt-get's options
# for the private list (apt_private_opts): scripts/apt-private.sh.
# shellcheck source=scripts/apt-private.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt-private.sh"
entries=$([ -n "$codename" ] && debian_entry "$codename")
# The release's own entry: its mirror gives the backports suite too.
entry=$(grep -m1 "^[^|]*|${codename}|" <<<"$entries")
if [ -z "$entry" ]; then
    echo "setup-writers: ${missing} missing, and the machine's apt sources (/etc/apt/sources.list, /etc/apt/sources.list.d/) hold no Debian entry for its release '${codename:-unknown}' to install them from: install them by hand" >&2
    exit 1
fi

apt_dir=${XENWALK_APT_DIR:-/var/tmp/xenwalk-apt}
"${sudo[@]}" mkdir -p "$apt_dir/lists/partial" || {
    echo "setup-writers: cannot create $apt_dir" >&2
    exit 1
}
sources=("# Written by xenwalk's scripts/setup-writers.sh from the machine's own Debian entries.")
line() { sources+=("$(apt_line "$@")"); }
while IFS='|' read -r uri suite comps signed; do
    line "$uri" "$suite" "$comps" "$signed"
done <<<"$entries"
IFS='|' read -r uri _ comps signed <<<"$entry"
if [ ${#backports[@]} -gt 0 ] && ! grep -q "^[^|]*|${codename}-backports|" <<<"$entries"; then
    line "$uri" "${codename}-backports" "$comps" "$signed"
fi
printf '%s\n' "${sources[@]}" | "${sudo[@]}" tee "$apt_dir/sources.list" >/dev/null
apt_private_opts "$apt_dir"
apt=("${sudo[@]}" apt-get "${apt_opts[@]}")

log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
# The private lists may be missing or stale: update them once, then install.
if ! "${apt[@]}" -qq update >"$log" 2>&1; then
    echo "setup-writers: apt-get update of the private sources ($apt_dir/sources.list) failed:" >&2
    tail -n 20 "$log" >&2
    exit 1
fi
sim=()
[ "$simulate" = 1 ] && sim=(-s --reinstall)
failed=()
install() { # PACKAGE [apt-get options]
    local pkg=$1
    shift
    if "${apt[@]}" -qq -y --no-install-recommends "${sim[@]}" "$@" install "$pkg" >"$log" 2>&1; then
        [ "$simulate" = 1 ] && sed -n "s/^Inst \(${pkg} .*\)/setup-writers: would install \1/p" "$log"
    else
        echo "setup-writers: apt-get install ${*:+$* }$pkg failed:" >&2
        tail -n 10 "$log" >&2
        failed+=("$pkg")
    fi
}
for p in "${need[@]}"; do install "$p"; done
for p in "${backports[@]}"; do install "$p" -t "${codename}-backports"; done
if [ ${#failed[@]} -gt 0 ]; then
    echo "setup-writers: not installed: ${failed[*]} (the tests that need them say NOT RUN)" >&2
fi
[ "$simulate" = 1 ] && exit $((${#failed[@]} > 0))
qemu_new_enough && command -v makedumpfile >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1
