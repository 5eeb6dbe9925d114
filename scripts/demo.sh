#!/usr/bin/env bash
# The main job on a fresh machine: install into .venv, run the default demo sweep (GRPO at lag 1 and 256, M2PO at
# lag 256, × 5 paired seeds on the embedded CPU engine) and write its report to runs/demo/report/REPORT.md.
# Extra arguments go to `harness sweep demo` (overrides, --name, --root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/harness sweep demo "$@"
