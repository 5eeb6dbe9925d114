#!/usr/bin/env bash
# The main job on a fresh machine: install, run the default demo sweep (stale 1, 64, 256 × GRPO, M2PO on the embedded
# CPU engine, two trails at a time) and write its report to runs/demo/report/REPORT.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
harness sweep demo "$@"
