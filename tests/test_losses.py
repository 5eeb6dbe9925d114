"""Loss registry of the embedded engine: hand-computed values, on-policy identities, τ = ∞ ≡ plain IS."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from m2po_reference import greedy_keep, water_fill_reference
from omegaconf import OmegaConf

from harness.engines.embedded.losses import LOSSES, LossInputs, get_loss
from harness.spec.config import AlgoConfig

STAT_KEYS = {"clip_frac", "m2_before", "m2_after", "masked_frac", "approx_kl", "is_ratio_mean"}
ln = math.log


def cfg(eps_clip=0.2, m2_threshold=0.04, behav_imp_weight_cap=5.0):
    return SimpleNamespace(eps_clip=eps_clip, m2_threshold=m2_threshold, behav_imp_weight_cap=behav_imp_weight_cap)


def inputs(log_r_behav, log_w, adv, mask, log_r_prox=None):
    """Build LossInputs from log ratios: logp = 0 (+ log π_θ/π_prox), prox = logp − log_r_prox,
    behav = prox − log_w, so π_θ/π_behav = exp(log_r_behav) when log_r_behav = log_r_prox + log_w."""
    base = torch.full_like(torch.as_tensor(log_r_behav, dtype=torch.float64), -1.0)
    logp = base.clone().requires_grad_()
    behav = base - torch.as_tensor(log_r_behav, dtype=torch.float64)
    if log_r_prox is None:
        log_r_prox = torch.as_tensor(log_r_behav, dtype=torch.float64) - torch.as_tensor(log_w, dtype=torch.float64)
    prox = base - torch.as_tensor(log_r_prox, dtype=torch.float64)
    return LossInputs(logp=logp, behav_logp=behav, prox_logp=prox,
                      advantages=torch.as_tensor(adv, dtype=torch.float64), mask=torch.as_tensor(mask))


def run(name, x, c):
    loss, stats = LOSSES[name](x, c)
    assert STAT_KEYS <= stats.keys() and all(isinstance(v, float) for v in stats.values())
    (grad,) = torch.autograd.grad(loss, x.logp)
    return loss.item(), stats, grad


def test_grpo_clip_hand_values():
    # rows: A = +1, −1; tokens r = π_θ/π_behav: row0 [1.5, 0.9], row1 [1.5, <pad>]; ε = 0.2, N = 3 valid tokens
    # row0 t0: max(−1.5, −1.2) = −1.2 (clipped branch active, no grad); row0 t1: max(−0.9, −0.9) = −0.9;
    # row1 t0: max(+1.5, +1.2) = +1.5 (unclipped).  loss = (−1.2 − 0.9 + 1.5)/3 = −0.2, clip_frac = 1/3
    # d loss/d logp = −A r / N where the unclipped branch is active: [0, −0.9/3], [1.5/3, 0]
    x = inputs([[ln(1.5), ln(0.9)], [ln(1.5), 7.0]], [[0.0, 0.0], [0.0, 0.0]], [1.0, -1.0],
               [[True, True], [True, False]])
    loss, s, g = run("grpo/clip", x, cfg())
    assert loss == pytest.approx(-0.2)
    assert s["clip_frac"] == pytest.approx(1 / 3)
    assert g.flatten().tolist() == pytest.approx([0.0, -0.3, 0.5, 0.0])
    assert s["is_ratio_mean"] == pytest.approx((1.5 + 0.9 + 1.5) / 3)
    # approx_kl is k3 against π_behav: mean of (r − 1) − ln r
    k3 = lambda r: (r - 1) - ln(r)  # noqa: E731
    assert s["approx_kl"] == pytest.approx((2 * k3(1.5) + k3(0.9)) / 3)
    assert s["masked_frac"] == s["m2_before"] == 0.0


def test_grpo_decoupled_hand_values_and_cap_drops_tokens():
    # one row, A = 1, ε = 0.2, cap = 2. behaviour weights w = π_prox/π_behav = [1, 1.5, 3];
    # r = π_θ/π_prox = [1.1, 1.5, 1]
    # t0: w·max(−1.1, −1.1) = −1.1; t1: 1.5·max(−1.5, −1.2) = −1.8 (clipped); t2: w = 3 > cap → rejected, weight 0
    # loss = (−1.1 − 1.8 + 0)/3 (the rejected token stays in the denominator); grad = [−1.1·1/3, 0, 0]
    log_w = [[0.0, ln(1.5), ln(3.0)]]
    log_r_prox = [[ln(1.1), ln(1.5), 0.0]]
    log_r_behav = [[a + b for a, b in zip(log_w[0], log_r_prox[0], strict=True)]]
    x = inputs(log_r_behav, log_w, [1.0], [[True, True, True]], log_r_prox=log_r_prox)
    loss, s, g = run("grpo/decoupled", x, cfg(behav_imp_weight_cap=2.0))
    assert loss == pytest.approx(-2.9 / 3)
    assert g.flatten().tolist() == pytest.approx([-1.1 / 3, 0.0, 0.0])
    assert s["clip_frac"] == pytest.approx(1 / 3) and s["behav_rejected_frac"] == pytest.approx(1 / 3)
    # a cap above 3 keeps t2: + 3·max(−1, −1) = −3
    loss_hi, s_hi, _ = run("grpo/decoupled", x, cfg(behav_imp_weight_cap=10.0))
    assert loss_hi == pytest.approx((-2.9 - 3.0) / 3) and s_hi["behav_rejected_frac"] == 0.0


def test_m2po_paper_hand_values():
    # one row, per-token A = [1, 1, −1, −1], log r = [0.5, −0.5, −0.4, 0.1] → s = (log r)² = [0.25, 0.25, 0.16, 0.01]
    # Trust-region tokens T (A>0,r>1 or A<0,r<1): t0 and t2 only; M2 is their mean, 0.205 (not 0.1675 over all)
    lr = [[0.5, -0.5, -0.4, 0.1]]
    adv = [[1.0, 1.0, -1.0, -1.0]]
    r = [math.exp(v) for v in lr[0]]
    x = inputs(lr, [[0.0] * 4], adv, [[True] * 4])
    # τ = 0.2: drop t0 → the rest of T is {0.16} ≤ 0.2. loss = −(1/4)(r1·1 − r2 − r3), t0 gets no gradient
    loss, s, g = run("m2po/paper", x, cfg(m2_threshold=0.2))
    assert s["m2_before"] == pytest.approx(0.205) and s["m2_after"] == pytest.approx(0.16)
    assert s["masked_frac"] == pytest.approx(0.25)
    assert loss == pytest.approx(-(r[1] - r[2] - r[3]) / 4)
    assert g.flatten().tolist() == pytest.approx([0.0, -r[1] / 4, r[2] / 4, r[3] / 4])
    # τ = 0.15: t0 then t2 go (0.16 > 0.15); T is empty (mean 0) and the tokens outside T stay
    loss, s, g = run("m2po/paper", x, cfg(m2_threshold=0.15))
    assert s["masked_frac"] == pytest.approx(0.5) and s["m2_after"] == 0.0
    assert loss == pytest.approx(-(r[1] - r[3]) / 4)
    assert s["clip_frac"] == 0.0  # no ε-clip in this reading
    # τ = 0.21 ≥ 0.205: nothing masked, although the mean over all valid tokens (0.1675) would not matter here
    assert run("m2po/paper", x, cfg(m2_threshold=0.21))[1]["masked_frac"] == 0.0


def test_m2po_official_water_filling_hand_values():
    # log r = [0.5, −0.5, −0.3, 0.1], A = [1, 1, −1, −1]: T = {t0: s 0.25, t2: s 0.09}, M2 over T = 0.17.
    lr = [[0.5, -0.5, -0.3, 0.1]]
    x = inputs(lr, [[0.0] * 4], [[1.0, 1.0, -1.0, -1.0]], [[True] * 4])
    r = [math.exp(v) for v in lr[0]]
    # budget 0.1 → target 0.2: capping at u0 = 0.09 gives 0.18 < 0.2, at 0.25 gives 0.34 ≥ 0.2 → τ² = 0.09 (−1e-12);
    # ratios are clamped to [e^−τ, e^τ]: t0 (r = e^0.5) and t2 (r = e^−0.3, exactly at the bound, −1e-12) lose their
    # gradient; t1 (A>0, r<1) and t3 (A<0, r>1) are outside T and unconstrained by PPO's max
    loss, s, g = run("m2po/official", x, cfg(m2_threshold=0.1))
    tau = (0.09 - 1e-12) ** 0.5
    assert loss == pytest.approx((-math.exp(tau) - r[1] + math.exp(-tau) + r[3]) / 4)
    assert g.flatten().tolist() == pytest.approx([0.0, -r[1] / 4, 0.0, r[3] / 4])
    assert s["m2_before"] == pytest.approx(0.17) and s["m2_after"] == pytest.approx(0.09)
    assert s["clip_frac"] == s["masked_frac"] == pytest.approx(0.5)
    # budget 0.04 → target 0.08 ≤ 0.09·2: k = 0, τ = 0 → PPO-clip with ε = 0 on every token
    loss, s, g = run("m2po/official", x, cfg(m2_threshold=0.04))
    assert loss == pytest.approx((-1.0 - r[1] + 1.0 + r[3]) / 4)
    # budget 0.2 ≥ 0.17: the official "no clip" bounds [0, 1e5]
    loss, s, g = run("m2po/official", x, cfg(m2_threshold=0.2))
    assert loss == pytest.approx((-r[0] - r[1] + r[2] + r[3]) / 4) and s["clip_frac"] == 0.0


def test_m2po_areal_hand_values_with_eps_zero():
    # AReaL: s = (log π_prox/π_behav)², all tokens candidates, strict <; ε = 0 (gsm8k_m2po.yaml)
    # first minibatch: π_θ = π_prox (r = 1); log w = [0.5, 0.1, −0.1, 0] → s = [0.25, 0.01, 0.01, 0], M2 = 0.0675
    # drop t0 → 0.02/3 < 0.04. Each kept token: w·max(−A·1, −A·clip(1,1,1)) = −w (A = 1); tie → full gradient −w/N
    log_w = [[0.5, 0.1, -0.1, 0.0]]
    w = [math.exp(v) for v in log_w[0]]
    x = inputs(log_w, log_w, [1.0], [[True] * 4], log_r_prox=[[0.0] * 4])
    loss, s, g = run("m2po/areal", x, cfg(eps_clip=0.0))
    assert s["m2_before"] == pytest.approx(0.0675) and s["m2_after"] == pytest.approx(0.02 / 3)
    assert s["masked_frac"] == pytest.approx(0.25)
    # AReaL's denominator: the 3 tokens the mask kept, not the 4 valid ones
    assert loss == pytest.approx(-(w[1] + w[2] + w[3]) / 3)
    assert g.flatten().tolist() == pytest.approx([0.0, -w[1] / 3, -w[2] / 3, -w[3] / 3])
    # a later minibatch (π_θ ≠ π_prox): with ε = 0, r = 1.2 gives max(−1.2, −1) = −1 (no grad, clipped), r = 0.8 keeps
    # its gradient. Two tokens with w = 1 (nothing masked): loss = (−1 − 0.8)/2, grad = [0, −0.8/2]
    x2 = inputs([[ln(1.2), ln(0.8)]], [[0.0, 0.0]], [1.0], [[True, True]])
    loss2, s2, g2 = run("m2po/areal", x2, cfg(eps_clip=0.0))
    assert loss2 == pytest.approx(-0.9) and g2.flatten().tolist() == pytest.approx([0.0, -0.4])
    assert s2["clip_frac"] == pytest.approx(0.5) and s2["masked_frac"] == 0.0


def test_m2po_areal_never_drops_every_token():
    x = inputs([[0.5, 0.4]], [[0.5, 0.4]], [1.0], [[True, True]], log_r_prox=[[0.0, 0.0]])
    _, s, g = run("m2po/areal", x, cfg(eps_clip=0.0))
    assert s["masked_frac"] == pytest.approx(0.5) and s["m2_after"] == pytest.approx(0.16)
    assert g[0, 0] == 0.0 and g[0, 1] != 0.0


def test_is_plain_hand_values():
    # loss = −(1/N) Σ r A: r = [2, 0.5], A = [1, 1] → −(2 + 0.5)/2; grad = −r A / N
    x = inputs([[ln(2.0), ln(0.5)]], [[0.0, 0.0]], [1.0], [[True, True]])
    loss, s, g = run("is/plain", x, cfg())
    assert loss == pytest.approx(-1.25) and g.flatten().tolist() == pytest.approx([-1.0, -0.25])
    assert s["clip_frac"] == s["masked_frac"] == 0.0


def _random_batch(seed, on_policy):
    gen = torch.Generator().manual_seed(seed)
    n, t = 6, 7
    logp = (torch.randn(n, t, generator=gen) * 0.5 - 1.5).requires_grad_()
    mask = torch.rand(n, t, generator=gen) > 0.25
    adv = torch.randn(n, generator=gen)
    if on_policy:
        behav = prox = logp.detach().clone()
    else:
        behav = logp.detach() + torch.randn(n, t, generator=gen) * 0.4
        prox = logp.detach() + torch.randn(n, t, generator=gen) * 0.1
    return LossInputs(logp=logp, behav_logp=behav, prox_logp=prox, advantages=adv, mask=mask)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_on_policy_ratios_one_nothing_masked_or_clipped(seed):
    x = _random_batch(seed, on_policy=True)
    ref_loss, ref_stats = LOSSES["is/plain"](x, cfg())
    (ref_grad,) = torch.autograd.grad(ref_loss, x.logp)
    adv = x.advantages[:, None].expand_as(x.logp)
    mean_adv = adv[x.mask].mean()
    for name in LOSSES:
        for c in (cfg(), cfg(eps_clip=0.0)):
            loss, stats = LOSSES[name](x, c)
            (grad,) = torch.autograd.grad(loss, x.logp)
            assert stats["is_ratio_mean"] == pytest.approx(1.0)
            assert stats["clip_frac"] == 0.0 and stats["masked_frac"] == 0.0
            assert stats["m2_before"] == 0.0 and stats["approx_kl"] == pytest.approx(0.0, abs=1e-7)
            assert loss.item() == pytest.approx(-mean_adv.item(), abs=1e-6), name
            torch.testing.assert_close(grad, ref_grad, msg=name)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_m2po_official_with_infinite_budget_is_plain_is(seed):
    x = _random_batch(seed, on_policy=False)
    loss, stats = LOSSES["m2po/official"](x, cfg(m2_threshold=float("inf")))
    is_loss, _ = LOSSES["is/plain"](x, cfg())
    assert loss.item() == pytest.approx(is_loss.item()) and stats["clip_frac"] == 0.0
    assert LOSSES["m2po/official"](x, cfg())[1]["clip_frac"] > 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_m2po_paper_with_infinite_tau_is_plain_is(seed):
    x = _random_batch(seed, on_policy=False)
    m2_loss, m2_stats = LOSSES["m2po/paper"](x, cfg(m2_threshold=float("inf")))
    is_loss, _ = LOSSES["is/plain"](x, cfg())
    assert torch.equal(m2_loss, is_loss)
    (g1,) = torch.autograd.grad(m2_loss, x.logp)
    (g2,) = torch.autograd.grad(is_loss, x.logp)
    assert torch.equal(g1, g2)
    assert m2_stats["masked_frac"] == 0.0 and m2_stats["m2_before"] > 0.04  # off-policy enough that τ=0.04 would mask
    assert LOSSES["m2po/paper"](x, cfg())[1]["masked_frac"] > 0.0


def test_padding_values_do_not_leak():
    x = _random_batch(3, on_policy=False)
    poisoned = LossInputs(logp=x.logp, behav_logp=x.behav_logp.masked_fill(~x.mask, float("nan")),
                          prox_logp=x.prox_logp.masked_fill(~x.mask, float("-inf")), advantages=x.advantages,
                          mask=x.mask)
    for name in LOSSES:
        clean, _ = LOSSES[name](x, cfg())
        dirty, _ = LOSSES[name](poisoned, cfg())
        (g,) = torch.autograd.grad(dirty, x.logp)
        assert torch.isfinite(dirty) and torch.isfinite(g).all(), name
        assert dirty.item() == pytest.approx(clean.item()), name


def test_token_level_advantages_match_broadcast():
    x = _random_batch(4, on_policy=False)
    x_tok = LossInputs(x.logp, x.behav_logp, x.prox_logp, x.advantages[:, None].expand_as(x.logp).clone(), x.mask)
    for name in LOSSES:
        assert LOSSES[name](x, cfg())[0].item() == pytest.approx(LOSSES[name](x_tok, cfg())[0].item()), name


def test_get_loss_registry_and_omegaconf_config():
    algo = OmegaConf.structured(AlgoConfig(name="m2po", variant="paper", m2_threshold=float("inf")))
    fn = get_loss(algo.name, algo.variant)
    x = _random_batch(5, on_policy=False)
    assert fn(x, algo)[1]["masked_frac"] == 0.0
    assert set(LOSSES) == {"grpo/clip", "grpo/decoupled", "m2po/paper", "m2po/official", "m2po/areal", "is/plain"}
    with pytest.raises(KeyError, match="known: "):
        get_loss("m2po", "verl")


def test_batch_without_valid_tokens_gives_zero_loss_and_zero_grad():
    x = _random_batch(6, on_policy=False)
    empty = LossInputs(x.logp, x.behav_logp, x.prox_logp, x.advantages, torch.zeros_like(x.mask))
    for name in LOSSES:
        loss, stats = LOSSES[name](empty, cfg())
        (g,) = torch.autograd.grad(loss, x.logp)
        assert loss.item() == 0.0 and not g.any(), name
        assert all(v == 0.0 for k, v in stats.items()), (name, stats)


# ---------------------------------------------------------------------------------------------------------------
# each M2PO reading against a naive per-token reference of that reading
# ---------------------------------------------------------------------------------------------------------------

def _naive_m2po(name, logp, behav, prox, adv, mask, tau, eps=0.0, cap=5.0):
    """Per-token Python loops, written from the readings' definitions (paper Algorithm 1 over T; AReaL's mask over
    every token on log π_prox/π_behav with the decoupled loss; the official water-filling clip). Returns the loss
    as a function of the current log-probs (a list of floats), so a finite difference gives its gradient."""
    n_rows, n_cols = len(mask), len(mask[0])
    toks = [(i, j) for i in range(n_rows) for j in range(n_cols) if mask[i][j]]
    big_n = max(len(toks), 1)

    def in_t(i, j):
        ratio = math.exp(logp[i][j] - behav[i][j])
        return (adv[i] > 1e-12 and ratio > 1 + 1e-12) or (adv[i] < -1e-12 and ratio < 1 - 1e-12)

    if name == "m2po/paper":
        sq = [(logp[i][j] - behav[i][j]) ** 2 for i, j in toks]
        keep = greedy_keep(sq, [True] * len(toks), [in_t(i, j) for i, j in toks], tau)
        return lambda lp: -sum(math.exp(lp[i][j] - behav[i][j]) * adv[i]
                               for (i, j), k in zip(toks, keep, strict=True) if k) / big_n
    if name == "m2po/areal":
        sq = [(prox[i][j] - behav[i][j]) ** 2 for i, j in toks]
        keep = greedy_keep(sq, [True] * len(toks), [True] * len(toks), tau, strict=True, keep_one=True)

        n_kept = max(sum(keep), 1)   # AReaL divides by the tokens its M2PO mask kept

        def areal(lp):
            total = 0.0
            for (i, j), k in zip(toks, keep, strict=True):
                w = math.exp(prox[i][j] - behav[i][j])
                if not k or w > cap:
                    continue
                r = math.exp(lp[i][j] - prox[i][j])
                total += w * max(-adv[i] * r, -adv[i] * min(max(r, 1 - eps), 1 + eps))
            return total / n_kept
        return areal
    tr = [(logp[i][j] - behav[i][j]) ** 2 for i, j in toks if in_t(i, j)]
    t, _, _ = water_fill_reference(tr, tau)
    low, high = (0.0, 100000.0) if math.isinf(t) else (math.exp(-t), math.exp(t))

    def official(lp):
        total = 0.0
        for i, j in toks:
            r = math.exp(lp[i][j] - behav[i][j])
            total += max(-adv[i] * r, -adv[i] * min(max(r, low), high))
        return total / big_n
    return official


@pytest.mark.parametrize("name", ["m2po/paper", "m2po/areal", "m2po/official"])
@pytest.mark.parametrize("seed", range(12))
def test_m2po_readings_match_naive_reference(name, seed):
    gen = torch.Generator().manual_seed(seed)
    n, t = 5, 6
    # values on a 1/32 grid of log ratios → ties and exact sums; taus from tiny to large
    logp = (torch.randint(-60, -5, (n, t), generator=gen).double() / 32).requires_grad_()
    behav = logp.detach() + torch.randint(-12, 13, (n, t), generator=gen).double() / 32
    prox = logp.detach() + torch.randint(-6, 7, (n, t), generator=gen).double() / 32
    adv = torch.randint(-2, 3, (n,), generator=gen).double()
    mask = torch.rand(n, t, generator=gen) > 0.2
    tau = [0.0, 0.01, 0.04, 0.1, 0.3, math.inf][seed % 6]
    x = LossInputs(logp=logp, behav_logp=behav, prox_logp=prox, advantages=adv, mask=mask)
    loss, stats = LOSSES[name](x, cfg(eps_clip=0.0, m2_threshold=tau))
    (grad,) = torch.autograd.grad(loss, logp)
    ref = _naive_m2po(name, logp.tolist(), behav.tolist(), prox.tolist(), adv.tolist(), mask.tolist(), tau)
    lp = logp.tolist()
    assert loss.item() == pytest.approx(ref(lp), abs=1e-9)
    h = 1e-7
    for i in range(n):
        for j in range(t):
            # away from the clip bounds the reference is smooth: compare a central difference with autograd
            up = [row[:] for row in lp]
            dn = [row[:] for row in lp]
            up[i][j] += h
            dn[i][j] -= h
            fd = (ref(up) - ref(dn)) / (2 * h)
            if abs(fd - grad[i, j].item()) > 1e-5:
                # a token sitting exactly on a clip bound has a one-sided derivative; autograd takes one side
                left = (ref(lp) - ref(dn)) / h
                right = (ref(up) - ref(lp)) / h
                assert min(abs(left - grad[i, j].item()), abs(right - grad[i, j].item())) < 1e-5, (name, i, j)


@pytest.mark.parametrize("seed", range(6))
def test_m2po_areal_weights_micro_batches_by_their_valid_tokens(seed):
    # AReaL's PPOActor.ppo_update: each micro-batch's loss (its own M2PO mask, its own kept-token mean) times
    # n_valid_mb / n_valid. The naive reference is the one-micro-batch reference applied to each micro-batch's rows.
    gen = torch.Generator().manual_seed(100 + seed)
    n, t = 6, 5
    logp = (torch.randint(-60, -5, (n, t), generator=gen).double() / 32).requires_grad_()
    behav = logp.detach() + torch.randint(-12, 13, (n, t), generator=gen).double() / 32
    prox = logp.detach() + torch.randint(-8, 9, (n, t), generator=gen).double() / 32
    adv = torch.randint(-2, 3, (n,), generator=gen).double()
    mask = torch.rand(n, t, generator=gen) > 0.2
    micro = torch.tensor([0, 0, 1, 1, 1, 2])
    x = LossInputs(logp=logp, behav_logp=behav, prox_logp=prox, advantages=adv, mask=mask, micro_batch=micro)
    loss, _ = LOSSES["m2po/areal"](x, cfg(eps_clip=0.0, m2_threshold=0.04))
    (grad,) = torch.autograd.grad(loss, logp)
    n_valid = int(mask.sum())
    parts = []
    for mb in range(3):
        rows = [i for i in range(n) if int(micro[i]) == mb]
        sub = [mask.tolist()[i] for i in rows]
        ref = _naive_m2po("m2po/areal", [logp.tolist()[i] for i in rows], [behav.tolist()[i] for i in rows],
                          [prox.tolist()[i] for i in rows], [adv.tolist()[i] for i in rows], sub, 0.04)
        parts.append((rows, ref, sum(map(sum, sub)) / n_valid))

    def total(lp):
        return sum(share * ref([lp[i] for i in rows]) for rows, ref, share in parts)

    lp = logp.tolist()
    assert loss.item() == pytest.approx(total(lp), abs=1e-9)
    # with several micro-batches the loss differs from one micro-batch over the same tokens
    one, _ = LOSSES["m2po/areal"](LossInputs(logp, behav, prox, adv, mask), cfg(eps_clip=0.0, m2_threshold=0.04))
    assert one.item() != pytest.approx(loss.item())
    h = 1e-7
    for i in range(n):
        for j in range(t):
            up = [row[:] for row in lp]
            dn = [row[:] for row in lp]
            up[i][j] += h
            dn[i][j] -= h
            left, right = (total(lp) - total(dn)) / h, (total(up) - total(lp)) / h
            assert min(abs(left - grad[i, j].item()), abs(right - grad[i, j].item())) < 1e-5, (i, j)
