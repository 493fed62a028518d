#!/usr/bin/env bash
# The project's test command (README "cargo test" plus the writers): installs the
# independent dump writers the tests compare against when they are missing
# (scripts/setup-writers.sh: Debian's qemu-system-x86 and makedumpfile), then runs
# the whole suite. Arguments go to cargo test.
#
# Without root or apt the writers stay missing and tests/writers.rs says NOT RUN;
# under CI (CI=true) that is a failure, here and in the test itself.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! scripts/setup-writers.sh; then
    if [ "${CI:-}" = true ]; then
        echo "test.sh: the dump writers could not be installed, and CI=true requires them" >&2
        exit 1
    fi
    echo "test.sh: going on without the dump writers (tests/writers.rs will say NOT RUN)" >&2
fi
exec cargo test "$@"
