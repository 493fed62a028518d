#!/usr/bin/env bash
# The project's test command (README "cargo test" plus the writers): installs the
# independent dump writers the tests compare against when they are missing
# (scripts/setup-writers.sh: Debian's qemu-system-x86 and makedumpfile), then runs
# the whole suite. Arguments go to cargo test.
#
# Without root or apt the writers stay missing and tests/writers.rs says NOT RUN;
# under CI (CI=true) that is a failure, here and in the test itself.
#
# The run ends with one line counting what did not run (tests/common's not_run lines,
# collected through XENWALK_NOT_RUN_LOG) and what it needs, so that a green run is
# never misread as a full one. The exit status is cargo test's.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! scripts/setup-writers.sh; then
    if [ "${CI:-}" = true ]; then
        echo "test.sh: the dump writers could not be installed, and CI=true requires them" >&2
        exit 1
    fi
    echo "test.sh: going on without the dump writers (tests/writers.rs will say NOT RUN)" >&2
fi

mkdir -p target
log=$PWD/target/not-run.log
: >"$log"
status=0
XENWALK_NOT_RUN_LOG=$log cargo test "$@" || status=$?

# "NOT RUN: <test>: <why>" -> what it needs, grouped and counted.
need_of() {
    case "$1" in
        *"real machine images"*) echo "need ../shared" ;;
        *"not built into "*)
            local w=${1#*not built into }
            echo "not built into ${w%% (*}"
            ;;
        needs\ *)
            local w=${1#needs }
            w=${w%% (*}
            echo "need ${w%%[,:;]*}"
            ;;
        *) echo "other: ${1:0:60}" ;;
    esac
}
n=$(grep -c '^NOT RUN: ' "$log" || true)
if [ "$status" -ne 0 ]; then
    failed="; cargo test failed (status $status): tests after the failure may not have run"
else
    failed=""
fi
if [ "$n" -eq 0 ] && [ "$status" -eq 0 ]; then
    echo "NOT RUN: none (every test ran in full)"
elif [ "$n" -eq 0 ]; then
    echo "NOT RUN: none reported$failed"
else
    summary=$(sed -n 's/^NOT RUN: [^:]*: //p' "$log" | while IFS= read -r why; do need_of "$why"; done |
        sort | uniq -c | sort -rn | awk '{c=$1; $1=""; sub(/^ /, ""); printf "%s%s: %d", (NR>1 ? "; " : ""), $0, c}')
    echo "NOT RUN: $n tests or parts of tests ($summary; the lines above say which, and $log lists them)$failed"
fi
exit "$status"
