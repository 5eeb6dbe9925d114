#!/usr/bin/env bash
# Installs harness and everything its demo and tests need on a fresh Debian 12 machine (run as root, or with sudo).
#   scripts/install.sh          Python packages only (enough for the demo and the fast tests)
#   scripts/install.sh --all    also the Debian packages of the integration tier (Slurm + slurmdbd + MariaDB, Chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--all" ]]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q slurm-wlm munge slurmdbd mariadb-server chromium >/dev/null
fi

# torch is named first with its exact version: that takes the local CPU wheel, and the project's torch range is
# then already satisfied, so pip never resolves to a multi-GB CUDA build.
python3 -m pip install -q torch==2.13.0 -e '.[dev]'
