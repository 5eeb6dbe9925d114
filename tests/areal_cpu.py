"""The venv that runs real AReaL on a CPU, for the tests marked areal_real (built once by scripts/areal_cpu_venv.sh).

HARNESS_AREAL_CPU_VENV names it (default /opt/harness-areal-cpu, outside any clone, so CI reuses it between runs: the
script keeps a venv that already works and builds one in 5 to 10 minutes, 9.4 GB, when there is none).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_VENV = "/opt/harness-areal-cpu"
BUILD_TIMEOUT_S = 3600


def areal_cpu_venv() -> Path:
    """The venv, built or checked by scripts/areal_cpu_venv.sh (which fails with pip's reason if it cannot)."""
    venv = Path(os.environ.get("HARNESS_AREAL_CPU_VENV", DEFAULT_VENV))
    proc = subprocess.run(["bash", str(REPO / "scripts" / "areal_cpu_venv.sh"), str(venv)], capture_output=True,
                          text=True, timeout=BUILD_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return venv
