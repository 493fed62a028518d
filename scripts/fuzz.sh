#!/usr/bin/env bash
# Bounded fuzzing of every parser (README "Fuzzing"): cargo-fuzz / libFuzzer with
# AddressSanitizer, debug assertions and overflow checks, on the stable toolchain, each target seeded with small valid files
# of every format and run for SECONDS. Prints executions and crashes per target; exit
# status 1 if any target crashed (the input is in target/fuzz/artifacts/<target>/).
#
# Usage: scripts/fuzz.sh [SECONDS-PER-TARGET] [TARGET...]   (default: 60, all targets)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(dump_open elf notes kdump flattened decompress xlcore xen_syms)

command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked --quiet cargo-fuzz
# cargo-fuzz passes -Z flags (-Zsanitizer=address ...): the stable compiler takes them
# under RUSTC_BOOTSTRAP=1, and ships the sanitizer runtime in rust-std.
export RUSTC_BOOTSTRAP=1
out=target/fuzz
mkdir -p "$out/logs"
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

status=0
printf '%-11s %12s %10s %8s  %s\n' target executions exec/s crashes result
for t in "${targets[@]}"; do
    mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
    [ -d "$out/seeds/$t" ] && cp -n "$out/seeds/$t"/* "$out/corpus/$t/" 2>/dev/null || true
    log="$out/logs/$t.log"
    result=ok
    cargo fuzz run -O -a --target-dir "$out" "$t" "$out/corpus/$t" -- \
        -max_total_time="$secs" -max_len=65536 -timeout=20 -rss_limit_mb=2048 \
        -artifact_prefix="$out/artifacts/$t/" -print_final_stats=1 >"$log" 2>&1 || result=CRASH
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
    crashes=$(find "$out/artifacts/$t" -type f | wc -l)
    [ "$result" = ok ] || status=1
    printf '%-11s %12s %10s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "$crashes" "$result"
    if [ "$result" != ok ]; then
        grep -m 3 -E 'panicked|ERROR: AddressSanitizer|Test unit written' "$log" | sed 's/^/    /'
    fi
done
exit $status
