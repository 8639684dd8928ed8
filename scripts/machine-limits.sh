#!/usr/bin/env bash
# Measures this machine's raw storage limits, the yardstick for the figures
# in BENCHMARKS.md: how many 100-byte writes per second survive an
# fdatasync each (dd oflag=dsync), and sequential write bandwidth with one
# fdatasync at the end (dd bs=1M conv=fdatasync).
#
# Usage: scripts/machine-limits.sh [DIR]
#   DIR defaults to $CARGO_TARGET_DIR, else ./target: the file system the
#   benchmarks write their WAL to. Needs ~512 MiB free there.
# Environment: DSYNC_WRITES (default 1000), SEQ_MIB (default 512).
#
# Output, one "key: value" per line, fixed keys:
#   machine-limits dir: <dir> (<fs type>), <cores> cores, <kernel>
#   fdatasync 100-byte writes/s: <n>
#   sequential write MB/s (1 MiB blocks, fdatasync at end): <n>
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${1:-${CARGO_TARGET_DIR:-target}}"
mkdir -p "$dir"
dsync_writes="${DSYNC_WRITES:-1000}"
seq_mib="${SEQ_MIB:-512}"
probe="$(mktemp "$dir/machine-limits.XXXXXX")"
trap 'rm -f "$probe"' EXIT

fs_type="$(stat -f -c %T "$dir" 2>/dev/null || echo unknown)"
echo "machine-limits dir: $(cd "$dir" && pwd) ($fs_type), $(nproc) cores, $(uname -sr)"

# dd prints "... copied, <seconds> s, <rate>" on stderr; take the seconds.
seconds_of() { sed -n 's/.* copied, \([0-9.e+-]*\) s,.*/\1/p' | tail -n 1; }

secs="$(dd if=/dev/zero of="$probe" bs=100 count="$dsync_writes" oflag=dsync 2>&1 | seconds_of)"
awk -v n="$dsync_writes" -v s="$secs" 'BEGIN { printf "fdatasync 100-byte writes/s: %.0f\n", n / s }'

secs="$(dd if=/dev/zero of="$probe" bs=1M count="$seq_mib" conv=fdatasync 2>&1 | seconds_of)"
awk -v n="$seq_mib" -v s="$secs" 'BEGIN { printf "sequential write MB/s (1 MiB blocks, fdatasync at end): %.0f\n", n * 1.048576 / s }'
