#!/usr/bin/env bash
# Benchmarks: criterion micro-benches of the hot path, then the whole-proxy load harness.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh bench
cargo bench --bench hot_path
benches/load/run.sh
