"""The separate venv with the real `areal` package (CPU torch) that AReaL-facing tests run AReaL's own code in.

Built once by scripts/areal_venv.sh (≈6 min, ≈3 GB; idempotent, so later sessions reuse it); HARNESS_AREAL_VENV=DIR
names another place.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def areal_python() -> str:
    """The areal venv's interpreter, building the venv first if it is missing or broken."""
    venv = Path(os.environ.get("HARNESS_AREAL_VENV", Path(tempfile.gettempdir()) / "harness-areal-venv"))
    proc = subprocess.run(["bash", str(REPO / "scripts" / "areal_venv.sh"), str(venv)], capture_output=True,
                          text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return str(venv / "bin" / "python")
