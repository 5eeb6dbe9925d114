#!/usr/bin/env bash
# The main job on a fresh machine: install into .venv, run the default demo sweep (GRPO at lag 1 and 256, M2PO at
# lag 256, × 5 paired seeds on the embedded CPU engine) and write its report to runs/demo/report/REPORT.md.
# Extra arguments go to `harness sweep demo` (overrides, --name, --root). It says the wall time of each phase: the
# install here, then the sweep's own (base model, trails, MLflow and report) in its last lines.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
bash scripts/install.sh
echo "install: $((SECONDS - started)) s"
status=0
.venv/bin/harness sweep demo "$@" || status=$?
echo "demo.sh: $((SECONDS - started)) s in all (install included)"
exit $status
