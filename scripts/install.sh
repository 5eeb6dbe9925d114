#!/usr/bin/env bash
# Installs harness and everything its demo and tests need into the project's own virtualenv, .venv (run as root on
# a fresh Debian 12 machine; any Python ≥ 3.10 works).
#   scripts/install.sh          Python packages only (enough for the demo and the fast tests)
#   scripts/install.sh --all    also the Debian packages of the integration tier (Slurm + slurmdbd + MariaDB, Chromium)
#
# Why a virtualenv: Debian's own python3 refuses pip installs outside one (PEP 668, "externally-managed-environment"),
# and a project environment leaves the system's packages alone whichever python3 comes first on PATH. Every script
# then runs .venv/bin/python and .venv/bin/harness. Debian ships venv's pip bootstrap in python3-venv: it is installed
# here when `python3 -m venv` cannot make an environment without it.
#
# torch is pinned exactly (torch==2.13.0). Where it comes from is pip's business: from PyPI that pin is the CUDA build
# (several GB with its NVIDIA libraries). For the CPU wheel (≈ 200 MB), name PyTorch's CPU wheel index:
#   HARNESS_TORCH_INDEX=https://download.pytorch.org/whl/cpu bash scripts/install.sh
# A machine whose pip configuration already offers a CPU wheel (a local wheel directory or index) needs nothing.
#
# Env: PYTHON (default python3) is the interpreter the virtualenv is made from; HARNESS_TORCH_INDEX as above.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV=.venv
TORCH=torch==2.13.0
export DEBIAN_FRONTEND=noninteractive
apt_updated=""

apt_install() {
  if [[ -z "$apt_updated" ]]; then apt-get update -q >/dev/null; apt_updated=1; fi
  apt-get install -y -q "$@" >/dev/null
}

if [[ "${1:-}" == "--all" ]]; then
  apt_install slurm-wlm munge slurmdbd mariadb-server chromium
fi

if ! "$VENV/bin/python" -c '' 2>/dev/null; then  # none yet, or one whose interpreter is gone
  rm -rf "$VENV"
  if ! "$PY" -m venv "$VENV" >/dev/null 2>&1; then
    rm -rf "$VENV"
    if command -v apt-get >/dev/null; then
      echo "install.sh: '$PY -m venv' needs Debian's python3-venv; installing it"
      apt_install python3-venv
    fi
    "$PY" -m venv "$VENV"  # fails with Python's own reason if it still cannot
  fi
  echo "install.sh: made $VENV with $("$VENV/bin/python" --version) from $(command -v "$PY")"
fi

PIP=("$VENV/bin/python" -m pip install -q)
if [[ -n "${HARNESS_TORCH_INDEX:-}" ]]; then
  "${PIP[@]}" --index-url "$HARNESS_TORCH_INDEX" "$TORCH"
fi
# torch is named with its exact version: the project's torch range is then already satisfied by it
"${PIP[@]}" "$TORCH" -e '.[dev]'
