#!/usr/bin/env bash
# Measures this machine's raw storage limits, the yardstick for the figures
# in BENCHMARKS.md: how many 100-byte writes per second survive an
# fdatasync each (dd oflag=dsync), appended to a new file (each fdatasync
# also writes the inode of the grown file) and written over a zero-filled,
# already synced file (data only, what the WAL's preallocated segments
# cost under Fsync::Always), sequential write bandwidth with one
# fdatasync at the end (dd bs=1M conv=fdatasync), and, for CPU-bound
# figures, the speed of one core at md5sum.
#
# Usage: scripts/machine-limits.sh [DIR]
#   DIR defaults to $CARGO_TARGET_DIR, else ./target: the file system the
#   benchmarks write their WAL to. Needs ~512 MiB free there.
# Environment: DSYNC_WRITES (default 1000), SEQ_MIB (default 512), ROUNDS
# (default 3). A shared or virtual disk varies a lot from one second to the
# next, so each figure is the median of ROUNDS runs, with their range.
#
# Output, one "key: value" per line, fixed keys:
#   machine-limits dir: <dir> (<fs type>), <cores> cores, <kernel>
#   fdatasync 100-byte writes/s: <median> (min <n>, max <n>, <rounds> rounds)
#   fdatasync 100-byte overwrites/s (preallocated file): <median> (min <n>, max <n>, <rounds> rounds)
#   sequential write MB/s (1 MiB blocks, fdatasync at end): <median> (min <n>, max <n>, <rounds> rounds)
#   md5sum MB/s (one core): <median> (min <n>, max <n>, <rounds> rounds)
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${1:-${CARGO_TARGET_DIR:-target}}"
mkdir -p "$dir"
dsync_writes="${DSYNC_WRITES:-1000}"
seq_mib="${SEQ_MIB:-512}"
rounds="${ROUNDS:-3}"
probe="$(mktemp "$dir/machine-limits.XXXXXX")"
trap 'rm -f "$probe"' EXIT

fs_type="$(stat -f -c %T "$dir" 2>/dev/null || echo unknown)"
echo "machine-limits dir: $(cd "$dir" && pwd) ($fs_type), $(nproc) cores, $(uname -sr)"

# dd prints "... copied, <seconds> s, <rate>" on stderr; take the seconds.
seconds_of() { sed -n 's/.* copied, \([0-9.e+-]*\) s,.*/\1/p' | tail -n 1; }

# Prints "<median> (min <n>, max <n>, <k> rounds)" of the numbers on stdin.
summary() {
    sort -n | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.0f (min %.0f, max %.0f, %d rounds)\n", m, v[1], v[NR], NR }'
}

# Rates of $dsync_writes single 100-byte writes with an fdatasync each, one
# per round: appended to a new file, or (with "preallocated") written over
# a zero-filled, synced file.
dsync_rates() {
    for _ in $(seq "$rounds"); do
        local extra=()
        if [ "${1:-}" = preallocated ]; then
            dd if=/dev/zero of="$probe" bs=1M count=1 conv=fdatasync 2>/dev/null
            extra=(conv=notrunc)
        fi
        secs="$(dd if=/dev/zero of="$probe" bs=100 count="$dsync_writes" oflag=dsync "${extra[@]}" 2>&1 | seconds_of)"
        awk -v n="$dsync_writes" -v s="$secs" 'BEGIN { printf "%.1f\n", n / s }'
        rm -f "$probe"
    done
}
echo "fdatasync 100-byte writes/s: $(dsync_rates | summary)"
echo "fdatasync 100-byte overwrites/s (preallocated file): $(dsync_rates preallocated | summary)"

rates=""
for _ in $(seq "$rounds"); do
    secs="$(dd if=/dev/zero of="$probe" bs=1M count="$seq_mib" conv=fdatasync 2>&1 | seconds_of)"
    rates+="$(awk -v n="$seq_mib" -v s="$secs" 'BEGIN { printf "%.1f", n * 1.048576 / s }')"$'\n'
    rm -f "$probe"
done
echo "sequential write MB/s (1 MiB blocks, fdatasync at end): $(printf '%s' "$rates" | summary)"

# CPU speed, the yardstick of CPU-bound figures (a shared virtual machine's
# CPU is not always as fast): MD5 of zeros in memory, one core.
rates=""
for _ in $(seq "$rounds"); do
    start="$(date +%s.%N)"
    head -c 256M /dev/zero | md5sum >/dev/null
    end="$(date +%s.%N)"
    rates+="$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", 256 * 1.048576 / (e - s) }')"$'\n'
done
echo "md5sum MB/s (one core): $(printf '%s' "$rates" | summary)"
