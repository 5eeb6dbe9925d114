"""The generated AReaL commands, validated by AReaL's own config parser (the real `areal` package, CPU torch).

Builds (once, ≈6 min, ≈3 GB) a separate venv with scripts/areal_venv.sh; reuse one with HARNESS_AREAL_VENV=DIR.
Without an AReaL checkout, the example yamls come from tests/fixtures/areal/ (see the note in each file).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import areal_support
import pytest

from harness.engines.areal.preflight import preflight
from harness.spec.sweepspec import build_spec, build_trails

pytestmark = [pytest.mark.integration, pytest.mark.areal]

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "areal"


@pytest.fixture(scope="module")
def areal_python() -> str:
    return areal_support.areal_python()


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("AReaL")
    (root / "examples" / "math").mkdir(parents=True)
    for name in ("gsm8k_grpo.yaml", "gsm8k_m2po.yaml"):
        shutil.copy(FIXTURES / name, root / "examples" / "math" / name)
    return root


def _trails(checkout: Path, python: str, *extra: str):
    return build_trails(build_spec(["areal_test", f"engine.areal_path={checkout}", f"engine.python={python}",
                                    "tracking=none", *extra]))


@pytest.mark.timeout(2400)
def test_page_trails_parse_with_areals_own_parser(areal_python, checkout, tmp_path):
    trails = _trails(checkout, areal_python)
    assert sorted(t.name for t in trails) == sorted([
        "stale 256 d2+d1 rollout 96 grpo", "stale 256 d2+d1 rollout 96 m2po",
        "stale 256 d1+d2 rollout 64 m2po", "stale 32 d1+d2 rollout 64 m2po"])
    assert preflight(trails, sweep_dir=tmp_path / "runs" / "areal_test") == []


@pytest.mark.timeout(600)
def test_wrong_overrides_are_caught_with_areals_message(areal_python, checkout):
    cases = {
        "actor.eps_clipp=0.3": "Could not override 'actor.eps_clipp'",                 # Hydra, inside AReaL
        "++actor.eps_clipp=0.3": "Key 'eps_clipp' not in 'PPOActorConfig'",            # AReaL's dataclass schema
        "recover.mode=resume": "Invalid recover mode 'resume'",                        # AReaL's validation
        "++cluster.n_gpus_per_node=8": "use 3 GPUs, but cluster has 1 x 8 = 8",        # AReaL's allocation parser
    }
    for override, message in cases.items():
        trails = _trails(checkout, areal_python, f"engine.overrides=['{override}']")[:1]
        errors = preflight(trails)
        assert len(errors) == 1 and message in errors[0], (override, errors)


@pytest.mark.timeout(600)
def test_harness_sweep_dry_run_uses_areals_parser(areal_python, checkout, tmp_path):
    def sweep(*extra: str) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "harness.cli", "sweep", "areal_test", f"engine.areal_path={checkout}",
                f"engine.python={areal_python}", "tracking=none", *extra, "--root", str(tmp_path / "runs"),
                "--dry-run", "--preflight"]
        return subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=600)

    ok = sweep()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = sweep("engine.overrides=['actor.eps_clipp=0.3']")
    out = bad.stdout + bad.stderr
    assert bad.returncode != 0
    assert "preflight found errors" in out and "Could not override 'actor.eps_clipp'" in out, out
    assert not (tmp_path / "runs" / "areal_test").exists()   # nothing was written, nothing launched
