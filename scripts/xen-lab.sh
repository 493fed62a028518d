#!/usr/bin/env bash
# Builds the boot files of the "Xen lab": a real Xen host under QEMU (software
# emulation) whose dom0 runs Debian's own toolstack and writes `xl dump-core` of a
# PV guest and of a PVH guest, then makes Xen crash into a kexec crash kernel that saves Xen's own
# crash dump, so tests/xen_lab.rs (Xen 4.17) and tests/xen_lab_420.rs (Xen 4.20)
# can check xenwalk against the real writers.
#
#   scripts/xen-lab.sh DIR [VERSION]
#
# VERSION is 4.17 (the default: Debian 12's Xen, from the machine's own package
# lists) or 4.20 (Debian 13 "trixie"'s Xen, see below).
#
# Into DIR: `xen` (Debian's xen-hypervisor-VERSION-amd64, gunzipped for QEMU's
# multiboot loader), `xen-syms` (its symbols, from the -dbg package of the same
# version) and `xen-syms.map` (the build's own System.map of them, from the same package), `vmlinuz` (Debian 12's current linux-image-amd64, 6.1.0-56-amd64 when this
# was written: dom0's kernel and the guest's, whatever the Xen) and `initrd.gz`, a busybox initramfs holding xl, xenstored, their
# libraries, the Xen and virtio modules and an /init that starts xenstored,
# xenconsoled and xen-init-dom0, creates the PV guest "guest" (domain 1: the same
# kernel with a busybox initramfs of its own), waits for it to reach its init,
# pauses it (`xl pause`), creates the PVH guest "pvh" (domain 2: the same kernel
# again, at its PVH entry point, with an initramfs of its own; no device model),
# waits for it to reach its init and pauses it too, prints linux_banner's address
# from /proc/kallsyms (dom0's, and the PVH guest's from its console), dumps the PV
# guest (`xl dump-core`) onto the first virtio disk and the PVH guest onto the
# third, and says `marker: CORE-WRITTEN` on the console; then, once the harness says GO, loads a crash kernel (`kexec -p`) and
# makes Xen crash into it (debug key C): that kernel copies /proc/vmcore, Xen's
# kexec crash dump, onto the second disk and says `marker: VMCORE-WRITTEN <size>`. (A guest that never ran cannot be dumped: xc_domain_dumpcore reads
# the p2m size from the shared info page the guest's kernel fills in.) The crash
# kernel is the same Linux, booted natively by Xen's kexec path, with an initramfs
# of busybox and the virtio modules.
#
# The same boot files make a second lab, the dom0-panic one: when the harness has
# written SQ into /dev/vda's last sector before booting, /init creates no guest and,
# on GO, makes dom0's own kernel panic (`echo c > /proc/sysrq-trigger`) instead, so
# that Xen crashes into the crash kernel on dom0's behalf.
#
# Xen 4.20: the hypervisor, its -dbg package (whose xen-syms, unlike 4.17's, has
# DWARF), the toolstack (xen-utils-4.20 and its libraries), kexec-tools and the C
# library they are built against come from trixie; Linux and busybox stay Debian
# 12's, so dom0, the guest and the crash kernel are the 4.17 lab's. Trixie's package
# lists are private (DIR/apt: sources.list from the machine's own Debian mirrors,
# scripts/apt-private.sh; lists fetched once). kexec-tools is trixie's because
# bookworm's links libxenctrl.so.4.17, which a 4.20 toolstack does not have.
#
# Nothing is installed: the packages are fetched with `apt-get download` into
# DIR/debs (76 MB for 4.17, 98 MB for 4.20; kept for reruns) and unpacked with `dpkg-deb -x` into DIR/root,
# which is removed once the initramfs is built. Quiet unless something fails; exit
# 1 then.
set -euo pipefail
out=${1:?usage: scripts/xen-lab.sh DIR [4.17|4.20]}
xver=${2:-4.17}
case "$xver" in
    4.17 | 4.20) ;;
    *) echo "xen-lab: Xen $xver: this lab knows 4.17 and 4.20" >&2 && exit 1 ;;
esac
mkdir -p "$out"
out=$(cd "$out" && pwd)
# The boot files are reused only when this very script made them (its checksum is
# kept beside them): an initramfs an older script built lacks what the tests now
# expect (the PVH guest was added so, and an old cache booted without it).
stamp="$(sha256sum "$0" | cut -c1-16) $xver"
[ -s "$out/initrd.gz" ] && [ -s "$out/xen" ] && [ -s "$out/vmlinuz" ] && [ -s "$out/xen-syms" ] && [ -s "$out/xen-syms.map" ] &&
    [ "$(cat "$out/script.stamp" 2>/dev/null)" = "$stamp" ] && exit 0
rm -f "$out/initrd.gz"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
fail() { echo "xen-lab: $*" >&2; tail -n 20 "$log" >&2; exit 1; }
command -v apt-get >/dev/null || fail "needs apt-get (a Debian system) to fetch Debian's Xen, Linux and busybox packages"
# Debian's current kernel ABI (linux-image-amd64's dependency); 6.1.0-56-amd64 when
# this was written, the kernel of ../shared/dumps/xen-4.17-dom0.
kver=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: linux-image-\(.*-amd64\)$/\1/p' | head -n 1)
if [ -z "$kver" ]; then
    apt-get -qq update >"$log" 2>&1 || fail "apt-get update failed"
    kver=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: linux-image-\(.*-amd64\)$/\1/p' | head -n 1)
fi
[ -n "$kver" ] || fail "no linux-image-amd64 in the package lists"
# xen-syms comes from the -dbg package of the same version as the hypervisor.
xen_pkgs=("xen-hypervisor-$xver-amd64" "xen-hypervisor-$xver-amd64-dbg" "xen-utils-$xver" "libxenmisc$xver" libxencall1 libxenevtchn1
      libxenforeignmemory1 libxengnttab1 libxenstore4 libxentoollog1 libyajl2 libxendevicemodel1
      libxenhypfs1 libxentoolcore1)
if [ "$xver" = 4.17 ]; then
    pkgs=("${xen_pkgs[@]}" busybox-static "linux-image-$kver" kexec-tools)
    other=()
else
    pkgs=(busybox-static "linux-image-$kver")
    # Trixie's: Xen, kexec-tools, and the libraries of both beyond Xen's own (their
    # NEEDED lines: the C library, libgcc_s for pthread_cancel, uuid, zlib, xz, zstd).
    other=("${xen_pkgs[@]}" kexec-tools libc6 libgcc-s1 libuuid1 zlib1g liblzma5 libzstd1)
fi

mkdir -p "$out/debs"
ndebs=$(find "$out/debs" -name '*.deb' | wc -l)
if ! ls "$out/debs/linux-image-${kver}"_*.deb >/dev/null 2>&1 || [ "$ndebs" -lt $((${#pkgs[@]} + ${#other[@]})) ]; then
    rm -f "$out/debs"/*.deb
    # apt-get download needs current package lists; refresh them once if it fails.
    if ! (cd "$out/debs" && apt-get -qq download "${pkgs[@]}") >"$log" 2>&1; then
        apt-get -qq update >"$log" 2>&1 || fail "apt-get update failed"
        (cd "$out/debs" && apt-get -qq download "${pkgs[@]}") >"$log" 2>&1 || fail "apt-get download ${pkgs[*]} failed"
    fi
    if [ ${#other[@]} -gt 0 ]; then
        # shellcheck source=scripts/apt-private.sh
        . "$(dirname "${BASH_SOURCE[0]}")/apt-private.sh"
        # shellcheck disable=SC1091 # the machine's own file
        codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
        apt_dir="$out/apt"
        mkdir -p "$apt_dir/lists/partial"
        { [ -n "$codename" ] && suite_sources "$codename" trixie; } >"$apt_dir/sources.list.new" || true
        [ -s "$apt_dir/sources.list.new" ] ||
            fail "the machine's apt sources hold no Debian entry for its release '${codename:-unknown}' whose mirror could give trixie's Xen 4.20"
        mv "$apt_dir/sources.list.new" "$apt_dir/sources.list"
        apt_private_opts "$apt_dir"
        if ! (cd "$out/debs" && apt-get "${apt_opts[@]}" -qq download "${other[@]}") >"$log" 2>&1; then
            apt-get "${apt_opts[@]}" -qq update >"$log" 2>&1 || fail "apt-get update of trixie's lists ($apt_dir/sources.list) failed"
            (cd "$out/debs" && apt-get "${apt_opts[@]}" -qq download "${other[@]}") >"$log" 2>&1 ||
                fail "apt-get download (trixie) ${other[*]} failed"
        fi
    fi
fi
root="$out/root"
rm -rf "$root"
mkdir -p "$root"
for d in "$out"/debs/*.deb; do dpkg-deb -x "$d" "$root" || fail "dpkg-deb -x $d failed"; done
gunzip -c "$root/boot/xen-$xver-amd64.gz" >"$out/xen"
cp "$root/boot/vmlinuz-$kver" "$out/vmlinuz"
cp "$root/usr/lib/debug/boot/xen-syms-$xver-amd64" "$out/xen-syms"
cp "$root/usr/lib/debug/boot/xen-syms-$xver-amd64.map" "$out/xen-syms.map"

# The initramfs.
ird="$out/initrd"
rm -rf "$ird"
mkdir -p "$ird"/{bin,sbin,etc/xen,proc,sys,dev,tmp,lib64,lib/x86_64-linux-gnu,modules,boot,var/lib/xen,var/log/xen,var/run/xen,run/xen,var/lock}
cp "$root/bin/busybox" "$ird/bin/busybox"
bin="$root/usr/lib/xen-$xver/bin"
for b in xl xenstored xenconsoled xen-init-dom0; do cp "$bin/$b" "$ird/bin/"; done
if [ "$xver" = 4.17 ]; then
    cp "$root/sbin/kexec" "$ird/bin/kexec"
    # Their libraries: Xen's from the packages, the C library and the rest from this
    # Debian system (the same release as the packages).
    for l in "$root"/usr/lib/x86_64-linux-gnu/lib*.so.*; do cp -a "$l" "$ird/lib/x86_64-linux-gnu/"; done
    libs=$(LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu" ldd "$ird/bin/xl" "$ird/bin/xenstored" "$ird/bin/xenconsoled" "$ird/bin/xen-init-dom0" "$ird/bin/kexec" |
           awk '/=> \// && !/xen-lab/ {print $3} /^\t\/lib64/ {print $1}' | sort -u)
    for l in $libs; do
        case "$l" in
            "$root"/*) ;;
            /lib64/*) cp -L "$l" "$ird/lib64/" ;;
            *) cp -L "$l" "$ird/lib/x86_64-linux-gnu/" ;;
        esac
    done
    # pthread_cancel (in xl) loads libgcc_s at run time: ldd does not list it.
    cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$ird/lib/x86_64-linux-gnu/"
else
    cp "$root/usr/sbin/kexec" "$ird/bin/kexec"
    # Every library from trixie's packages, resolved by trixie's own loader (this
    # system's may be older than the programs need); libgcc_s as above.
    ld="$root/usr/lib64/ld-linux-x86-64.so.2"
    lp="$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu"
    cp -L "$ld" "$ird/lib64/"
    for b in xl xenstored xenconsoled xen-init-dom0 kexec; do
        "$ld" --library-path "$lp" --list "$ird/bin/$b" >"$log" 2>&1 || fail "trixie's loader cannot resolve $b's libraries"
        ! grep -q "not found" "$log" || fail "$b needs a library no package here has"
        awk '/=> \// {print $3}' "$log"
    done | sort -u | while read -r l; do cp -L "$l" "$ird/lib/x86_64-linux-gnu/"; done
    cp -L "$root/usr/lib/x86_64-linux-gnu/libgcc_s.so.1" "$ird/lib/x86_64-linux-gnu/"
fi
mods="$root/lib/modules/$kver/kernel"
# Load order: each after what it depends on (the modules' own depends= lines).
for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev \
         drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci drivers/block/virtio_blk \
         drivers/xen/xen-privcmd drivers/xen/xenfs/xenfs drivers/xen/xen-evtchn drivers/xen/xen-gntdev \
         drivers/xen/xen-gntalloc; do
    cp "$mods/$m.ko" "$ird/modules/"
    echo "$(basename "$m").ko" >>"$ird/modules/order"
done
cp "$out/vmlinuz" "$ird/boot/vmlinuz"
: >"$ird/etc/xen/xl.conf"
# The guest: the same kernel with a busybox initramfs of its own that says
# `marker: GUEST-UP` on its console (logged by xenconsoled) and sleeps.
gi="$out/guest-initrd"
rm -rf "$gi"
mkdir -p "$gi"/{bin,proc,sys,dev}
cp "$root/bin/busybox" "$gi/bin/busybox"
cat >"$gi/init" <<'GINIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
echo "marker: GUEST-UP $(cut -d' ' -f1 /proc/uptime)"
exec sleep 1000000
GINIT
chmod +x "$gi/init"
(cd "$gi" && find . | "$gi/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1 >"$ird/boot/guest-initrd.gz") || fail "cpio failed"
: >"$ird/etc/xen/xl.conf"
cat >"$ird/etc/xen/guest.cfg" <<'CFG'
name = "guest"
type = "pv"
kernel = "/boot/vmlinuz"
ramdisk = "/boot/guest-initrd.gz"
cmdline = "console=hvc0 rdinit=/init"
memory = 128
vcpus = 2
CFG
# The second guest, PVH (HVM without emulated devices, so no device model in dom0):
# the same kernel, booted at its PVH entry point (XEN_ELFNOTE_PHYS32_ENTRY,
# CONFIG_PVH=y in Debian's kernel), with an initramfs that says `marker: PVH-UP`
# and linux_banner's address from its own /proc/kallsyms, then sleeps. 96 MiB: the
# kernel's image is loaded at its physical address (16 MiB) and spans 58 MiB
# (libxenguest refuses 64: "segment kernel too large (0x3a00 > 0x4000 - 0x1000
# pages)"). tsc_mode "native": under QEMU's TCG the TSC is not reliable, so by
# default Xen intercepts RDTSC(P) (vtsc); QEMU's SVM reports the guest's RDTSCP as
# an RDTSC exit without next-RIP, and Xen can then only loop on it ("SVM Insn len
# emulation failed (1): d2v0 64bit @ 0010:ffffffff8107ee00 -> 0f 01 f9").
pi="$out/pvh-initrd"
rm -rf "$pi"
mkdir -p "$pi"/{bin,proc,sys,dev}
cp "$root/bin/busybox" "$pi/bin/busybox"
cat >"$pi/init" <<'PINIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
echo 0 > /proc/sys/kernel/kptr_restrict
echo "marker: PVH-UP $(uname -r) linux_banner $(grep ' linux_banner$' /proc/kallsyms | cut -d' ' -f1)"
exec sleep 1000000
PINIT
chmod +x "$pi/init"
(cd "$pi" && find . | "$pi/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1 >"$ird/boot/pvh-initrd.gz") || fail "cpio failed"
# Xen 4.20 only: under 4.17 the same guest stops before its console is up, its
# vCPU halted with interrupts off (an early exception's halt loop: the VMCB's exit
# HLT, RFLAGS 0x82, CR2 0xffff888003143480), which Xen takes for a power-off
# (hvm_hlt, xen/arch/x86/hvm/hvm.c@4.17; `xl list -v`: reason code 0).
[ "$xver" = 4.17 ] || cat >"$ird/etc/xen/pvh.cfg" <<'CFG'
name = "pvh"
type = "pvh"
kernel = "/boot/vmlinuz"
ramdisk = "/boot/pvh-initrd.gz"
cmdline = "console=hvc0 rdinit=/init"
memory = 96
vcpus = 1
tsc_mode = "native"
on_poweroff = "preserve"
on_reboot = "preserve"
on_crash = "preserve"
CFG
cat >"$ird/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin LD_LIBRARY_PATH=/lib/x86_64-linux-gnu
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts
for m in $(cat /modules/order); do insmod /modules/$m || echo "marker: FAILED insmod $m"; done
mount -t xenfs xenfs /proc/xen
step() { echo "marker: step $*"; }
fail() { echo "marker: FAILED $*"; while true; do sleep 60; done; }
step xenstored
xenstored --pid-file=/var/run/xenstored.pid || fail xenstored
step xen-init-dom0
xen-init-dom0 || fail xen-init-dom0
step xenconsoled
mkdir -p /var/log/xen/console
xenconsoled --pid-file=/var/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console || fail xenconsoled
# xl now and then dies of SIGSEGV in libgcc_s's unwinder as it exits (libxenstore
# cancels its reader thread; seen once in a few runs, under load), sometimes after
# doing its work: each step is judged by its result and tried again if need be.
note() { echo "marker: note $*"; }
# The crash: the harness first has QEMU dump the machine as it is now, then writes
# GO into the last sector of /dev/vda. Then a crash kernel is loaded into the region
# Xen reserved (crashkernel=) and Xen crashes into it: Xen's kexec path writes its
# crash notes and jumps to the crash kernel, whose /init copies /proc/vmcore onto
# /dev/vdb. Made to crash by `$1`: `xen` (debug key C: Xen's own crash) or `dom0`
# (dom0's kernel panics, `echo c > /proc/sysrq-trigger`; its panic notifier asks
# Xen to shut dom0 down as crashed, and Xen's hwdom_shutdown crashes into kexec on
# its behalf: "Hardware Dom0 crashed", X:xen/common/shutdown.c@4.17.0).
last=$(( $(cat /sys/block/vda/size) - 1 ))
sector() { dd if=/dev/vda bs=512 skip=$last count=1 iflag=direct 2>/dev/null | head -c 2; }
crash() {
    until [ "$(sector)" = GO ]; do sleep 0.5; done
    step kexec
    kexec -p /boot/vmlinuz --initrd=/boot/crash-initrd.gz \
        --append="console=ttyS0,115200 irqpoll nr_cpus=1 reset_devices rdinit=/init" || fail "kexec -p"
    step crash "$1"
    for n in 1 2 3; do
        if [ "$1" = dom0 ]; then
            echo c >/proc/sysrq-trigger
        else
            xl debug-keys C || note "xl debug-keys exited with status $?"
        fi
        sleep 20
    done
    fail "Xen did not crash into the crash kernel"
}
# The harness asks for the dom0-panic lab with SQ in that sector at boot: no guests
# then, only dom0 and the crash.
if [ "$(sector)" = SQ ]; then
    echo "marker: kernel $(uname -r)"
    echo 0 > /proc/sys/kernel/kptr_restrict
    echo "marker: linux_banner $(grep ' linux_banner$' /proc/kallsyms)"
    echo "marker: CORE-WRITTEN"
    crash dom0
fi
step xl create
n=0
until xl list guest >/dev/null 2>&1; do
    n=$((n + 1)); [ $n -gt 3 ] && fail "xl create"
    xl create /etc/xen/guest.cfg || note "xl create exited with status $?"
done
n=0
until grep -q "marker: GUEST-UP" /var/log/xen/console/guest-guest.log 2>/dev/null; do
    n=$((n + 1)); [ $n -gt 300 ] && fail "the guest did not come up"; sleep 1
done
sleep 2
paused() { [ "$(xl list "$1" 2>/dev/null | awk 'NR == 2 { print substr($5, 3, 1) }')" = p ]; }
pause() {
    n=0
    until paused "$1"; do
        n=$((n + 1)); [ $n -gt 3 ] && fail "xl pause $1"
        xl pause "$1" || note "xl pause $1 exited with status $?"
    done
}
pause guest
# The PVH guest (domain 2), once the PV one is paused. If it does not come up (it
# is kept when it stops: on_crash etc. "preserve"), its console log goes to the
# serial console.
pvhlog=/var/log/xen/console/guest-pvh.log
if [ -f /etc/xen/pvh.cfg ]; then
    pvh_failed() {
        xl list -v
        xl debug-keys v
        xl debug-keys q
        tail -n 80 $pvhlog 2>/dev/null | tr -d '\r' | sed 's/^/pvh console: /'
        fail "$1"
    }
    step xl create pvh
    n=0
    until xl list pvh >/dev/null 2>&1; do
        n=$((n + 1)); [ $n -gt 3 ] && pvh_failed "xl create pvh"
        xl create /etc/xen/pvh.cfg || note "xl create pvh exited with status $?"
    done
    n=0
    until grep -q "marker: PVH-UP" $pvhlog 2>/dev/null; do
        n=$((n + 1))
        [ $n -gt 300 ] && pvh_failed "the PVH guest did not come up"
        # Shut down or crashed (state s or c) is final; anything else, an
        # unreadable state included (a tool that failed this once), is waited on.
        case "$(xl list pvh 2>/dev/null | awk 'NR == 2 { print substr($5, 4, 2) }')" in
            s? | ?c) pvh_failed "the PVH guest stopped" ;;
            *) ;;
        esac
        sleep 1
    done
    echo "marker: pvh $(grep -m 1 'marker: PVH-UP' $pvhlog | tr -d '\r' | sed 's/.*marker: PVH-UP //')"
    sleep 2
    pause pvh
fi
xl list
echo "marker: kernel $(uname -r)"
echo 0 > /proc/sys/kernel/kptr_restrict
echo "marker: linux_banner $(grep ' linux_banner$' /proc/kallsyms)"
step xl dump-core
# Straight onto the disk: dom0's RAM-backed root has no room for it. The harness
# finds the core's end from its section headers.
n=0
until xl dump-core guest /dev/vda; do
    n=$((n + 1)); [ $n -ge 3 ] && fail "xl dump-core"
    note "xl dump-core exited with status $?: again"
done
# The PVH guest's core (an HVM core: its pages by guest frame, .xen_pfn) onto the
# third disk. Slow under TCG (about four minutes): libxenguest maps every gfn below
# the guest's highest (its special pages at 0xfeff0) one at a time, skipping only
# 0xf0000-0xfffff (xc_core_arch_gpfn_may_present, tools/libs/guest/xg_core_x86.c).
if [ -f /etc/xen/pvh.cfg ]; then
    step xl dump-core pvh
    n=0
    until xl dump-core pvh /dev/vdc; do
        n=$((n + 1)); [ $n -ge 3 ] && fail "xl dump-core pvh"
        note "xl dump-core pvh exited with status $?: again"
    done
fi
sync
echo "marker: CORE-WRITTEN"
crash xen
INIT
# The crash kernel's initramfs: busybox and the virtio modules.
ck="$out/crash-initrd"
rm -rf "$ck"
mkdir -p "$ck"/{bin,proc,sys,dev,modules}
cp "$root/bin/busybox" "$ck/bin/busybox"
grep virtio "$ird/modules/order" >"$ck/modules/order"
for m in $(cat "$ck/modules/order"); do cp "$ird/modules/$m" "$ck/modules/"; done
cat >"$ck/init" <<'CINIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules/order); do insmod /modules/$m || echo "marker: FAILED insmod $m"; done
size=$(stat -c %s /proc/vmcore) || { echo "marker: FAILED no /proc/vmcore"; exec sleep 1000000; }
echo "marker: crash kernel $(uname -r): /proc/vmcore is $size bytes"
dd if=/proc/vmcore of=/dev/vdb bs=1M conv=fsync 2>/dev/null || echo "marker: FAILED writing /dev/vdb"
sync
echo "marker: VMCORE-WRITTEN $size"
exec sleep 1000000
CINIT
chmod +x "$ck/init"
(cd "$ck" && find . | "$ck/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1 >"$ird/boot/crash-initrd.gz") || fail "cpio failed"
chmod +x "$ird/init"
(cd "$ird" && find . | "$ird/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1 >"$out/initrd.gz.tmp") || fail "cpio failed"
mv "$out/initrd.gz.tmp" "$out/initrd.gz"
echo "$stamp" >"$out/script.stamp"
# Keep the packages (a rerun starts from them), not what was unpacked from them.
rm -rf "$root" "$ird" "$gi" "$pi" "$ck"
