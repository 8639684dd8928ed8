#!/usr/bin/env bash
# Failover figures of lease coordination with LeaseConfig's default timings:
# three worker processes on a 12-shard kinesis-mock stream, leases in moto's
# DynamoDB; graceful stops and SIGKILLs, each timed from the signal to the
# moved shards' first records handled by another worker. A few minutes.
# Figures go to BENCHMARKS.md ("Lease coordination between processes").
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo test --all-features --test lease_processes -- --ignored --exact \
    figures::failover_with_default_timings --nocapture "$@"
