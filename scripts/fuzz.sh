#!/usr/bin/env bash
# Bounded fuzzing of every parser and of the Xen-aware layer (README "Fuzzing"):
# cargo-fuzz / libFuzzer with AddressSanitizer, debug assertions and overflow checks,
# on the stable toolchain. Each target starts from the small minimised corpus kept in
# the repo (fuzz/corpus/<target>/) and from small valid files of every format, and
# runs for SECONDS. Prints, per target, executions, exec/s, seconds and crashes; exit
# status 1 if any target crashed (the input is in target/fuzz/artifacts/<target>/).
#
# Usage: scripts/fuzz.sh [--ci] [--update-corpus] [SECONDS-PER-TARGET] [TARGET...]
#   default: 60 s, every target
#   --ci              every target for 15 s (what .ci/run runs)
#   --update-corpus   afterwards, minimise each run's corpus (cargo fuzz cmin) and
#                     keep a few of its files in fuzz/corpus/<target>/ (at most 8
#                     files and 48 KiB per target)
set -euo pipefail
cd "$(dirname "$0")/.."
all=(dump_open elf notes kdump flattened decompress xlcore xen_syms xen_domains xen_p2m xen_expr va_lines console)
secs=60
update=0
while [ $# -gt 0 ]; do
    case $1 in
        --ci) secs=15; shift ;;
        --update-corpus) update=1; shift ;;
        *) break ;;
    esac
done
if [ $# -gt 0 ]; then secs=$1; shift; fi
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked --quiet cargo-fuzz
# cargo-fuzz passes -Z flags (-Zsanitizer=address ...): the stable compiler takes them
# under RUSTC_BOOTSTRAP=1, and ships the sanitizer runtime in rust-std.
export RUSTC_BOOTSTRAP=1
out=target/fuzz
mkdir -p "$out/logs"
t0=$(date +%s)
# With the Xen lab's core (tests/xen_lab.rs made it), a cut of it seeds xlcore too.
lab_core=target/tmp/xen-lab/run/guest.core
cargo run --quiet --example fuzz_seeds -- "$out/seeds" $( [ -s "$lab_core" ] && echo "$lab_core" )
# A small ELF executable with symbols, for xen_syms (the real xen-syms is 2.8 MB).
if command -v cc >/dev/null 2>&1 && [ ! -s "$out/seeds/xen_syms/tiny" ]; then
    mkdir -p "$out/seeds/xen_syms"
    printf 'char idle_pg_table[4096] __attribute__((aligned(4096)));\nconst char xen_extra[] = "-fuzz";\nint xen_major_version(void) { return 4; }\nint xen_minor_version(void) { return 17; }\nvoid _start(void) {}\n' > "$out/seeds/tiny.c"
    cc -O1 -nostdlib -static -no-pie -o "$out/seeds/xen_syms/tiny" "$out/seeds/tiny.c" 2>/dev/null || true
fi
# -a: debug assertions and overflow checks on, so arithmetic overflow is a crash too.
cargo fuzz build -O -a --target-dir "$out" >"$out/logs/build.log" 2>&1 || { tail -n 30 "$out/logs/build.log"; exit 1; }
echo "seeds and build: $(( $(date +%s) - t0 )) s"

status=0
printf '%-12s %12s %10s %8s %8s  %s\n' target executions exec/s seconds crashes result
for t in "${targets[@]}"; do
    mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
    for d in "$out/seeds/$t" "fuzz/corpus/$t"; do
        [ -d "$d" ] && cp -n "$d"/* "$out/corpus/$t/" 2>/dev/null || true
    done
    log="$out/logs/$t.log"
    result=ok
    start=$(date +%s%N)
    cargo fuzz run -O -a --target-dir "$out" "$t" "$out/corpus/$t" -- \
        -max_total_time="$secs" -max_len=65536 -timeout=20 -rss_limit_mb=2048 \
        -artifact_prefix="$out/artifacts/$t/" -print_final_stats=1 >"$log" 2>&1 || result=CRASH
    ds=$(( ($(date +%s%N) - start) / 100000000 ))  # tenths of a second
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
    crashes=$(find "$out/artifacts/$t" -type f | wc -l)
    [ "$result" = ok ] || status=1
    printf '%-12s %12s %10s %6d.%d %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" $((ds / 10)) $((ds % 10)) "$crashes" "$result"
    if [ "$result" != ok ]; then
        grep -m 3 -E 'panicked|ERROR: AddressSanitizer|ERROR: libFuzzer|Test unit written' "$log" | sed 's/^/    /'
    fi
done

if [ $update = 1 ]; then
    for t in "${targets[@]}"; do
        min="$out/cmin/$t"
        rm -rf "$min" && mkdir -p "$min"
        cp "$out/corpus/$t"/* "$min/" 2>/dev/null || continue
        cargo fuzz cmin -O -a --target-dir "$out" "$t" "$min" -- -max_len=65536 -timeout=20 \
            >"$out/logs/$t.cmin.log" 2>&1 || { echo "cmin $t failed: $out/logs/$t.cmin.log"; continue; }
        # A few of what cmin kept: the largest files up to 16 KiB (they reach furthest),
        # at most 8 and 48 KiB in all.
        keep="fuzz/corpus/$t"
        rm -rf "$keep" && mkdir -p "$keep"
        total=0 n=0
        while read -r size f; do
            [ $n -lt 8 ] && [ $((total + size)) -le 49152 ] || continue
            cp "$f" "$keep/" && total=$((total + size)) n=$((n + 1))
        done < <(find "$min" -type f -size -16k -printf '%s %p\n' | sort -rn)
        echo "fuzz/corpus/$t: $n files, $total bytes"
    done
fi
exit $status
