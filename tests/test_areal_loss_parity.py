"""`m2po/areal` against AReaL's own loss: the real `areal.trainer.ppo.actor.grpo_loss_fn` of areal 1.0.4, run in the
areal venv (tests/areal_support.py) on random lagged batches, from on-policy to heavily masked, one micro-batch and
several. Loss and gradient must agree, denominator included (AReaL divides by the tokens its M2PO mask kept, and
weights micro-batches by their valid tokens)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import areal_support
import pytest
import torch

from harness.engines.embedded.losses import LossInputs, m2po_areal

pytestmark = [pytest.mark.integration, pytest.mark.areal]

HERE = Path(__file__).resolve().parent


def lagged_case(seed: int, rows: int, width: int, lag: float, n_micro: int, eps_clip: float = 0.0) -> dict:
    """A batch as a stale rollout gives it: behaviour log-probs, a proximal policy `lag` away from them (the larger,
    the more tokens M2PO masks), a current policy a little away from the proximal one, group advantages shared by
    a row's tokens, answers of random length."""
    g = torch.Generator().manual_seed(seed)
    behav = -torch.rand(rows, width, generator=g) * 3.0
    prox = behav + lag * torch.randn(rows, width, generator=g)
    logp = prox + 0.05 * torch.randn(rows, width, generator=g)
    lengths = torch.randint(1, width + 1, (rows,), generator=g)
    mask = torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)
    adv = torch.randn(rows, generator=g).unsqueeze(1).expand(rows, width).clone()
    micro = torch.arange(rows) * n_micro // rows
    return {"logp": logp, "behav_logp": behav, "prox_logp": prox, "advantages": adv, "mask": mask,
            "micro_batch": micro, "eps_clip": eps_clip, "cap": 5.0, "m2_threshold": 0.04}


CASES = [lagged_case(seed, rows, width, lag, n_micro, eps)
         for seed, (rows, width, lag, n_micro, eps) in enumerate([
             (8, 6, 0.0, 1, 0.0),      # on-policy: nothing masked
             (16, 12, 0.05, 1, 0.0),   # mild lag: M2 near τ
             (16, 12, 0.3, 1, 0.0),    # heavy lag: most tokens masked
             (32, 20, 0.5, 1, 0.0),    # far off-policy: behaviour weights above the cap rejected too
             (24, 16, 0.2, 3, 0.0),    # three micro-batches, each masked on its own
             (24, 16, 0.2, 4, 0.4),    # micro-batches with a PPO clip ε = 0.4
             (40, 30, 1.0, 2, 0.0),    # extreme: AReaL keeps one token per micro-batch
         ])]


def harness_loss(case: dict) -> dict:
    logp = case["logp"].clone().requires_grad_(True)
    x = LossInputs(logp=logp, behav_logp=case["behav_logp"], prox_logp=case["prox_logp"],
                   advantages=case["advantages"], mask=case["mask"], micro_batch=case["micro_batch"])
    algo = SimpleNamespace(eps_clip=case["eps_clip"], behav_imp_weight_cap=case["cap"],
                           m2_threshold=case["m2_threshold"])
    loss, stats = m2po_areal(x, algo)
    (grad,) = torch.autograd.grad(loss, logp)
    return {"loss": loss.detach(), "grad": grad, "masked_frac": stats["masked_frac"]}


@pytest.mark.timeout(2400)
def test_m2po_areal_equals_areals_grpo_loss_fn(tmp_path):
    python = areal_support.areal_python()
    torch.save(CASES, tmp_path / "in.pt")
    proc = subprocess.run([python, str(HERE / "areal_loss_reference.py"), str(tmp_path / "in.pt"),
                           str(tmp_path / "out.pt")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = torch.load(tmp_path / "out.pt", weights_only=True)
    masked = []
    for i, (case, ref) in enumerate(zip(CASES, theirs, strict=True)):
        ours = harness_loss(case)
        masked.append(ours["masked_frac"])
        torch.testing.assert_close(ours["loss"], ref["loss"], rtol=1e-5, atol=1e-7, msg=f"case {i}: loss")
        torch.testing.assert_close(ours["grad"], ref["grad"], rtol=1e-5, atol=1e-7, msg=f"case {i}: gradient")
    # the cases cover what they claim: nothing masked on-policy, heavy masking far off-policy
    assert masked[0] == 0.0 and max(masked) > 0.5
