"""Policy-gradient losses of the embedded engine: pure functions in a registry, keyed "<algo.name>/<algo.variant>".

Every loss takes a :class:`LossInputs` and the algo config (attributes ``eps_clip``, ``m2_threshold``,
``behav_imp_weight_cap``) and returns ``(loss, stats)``. The loss is a scalar averaged over the *total* number of
valid tokens: a token dropped by a mask or a rejection stays in the denominator, so masking never inflates the weight
of the tokens that remain. The one exception is ``m2po/areal``, which keeps AReaL's own denominator (the tokens its
M2PO mask kept, per micro-batch; see its docstring). Stats are floats, always the same keys (0.0 where a loss has
nothing to report):

- ``clip_frac``: fraction of valid tokens whose clipped PPO branch is the active (strictly larger) one;
- ``m2_before`` / ``m2_after`` / ``masked_frac``: M2PO's second moment before and after masking, fraction dropped;
- ``approx_kl``: k3 estimator of KL(π_behav ‖ π_θ), mean over valid tokens of (r − 1) − log r, r = π_θ/π_behav;
- ``is_ratio_mean``: mean over valid tokens of r = π_θ/π_behav;
- ``behav_rejected_frac``: decoupled losses only, fraction of valid tokens whose behaviour weight exceeds the cap.

Which reading of which paper each loss implements is stated in its docstring, with the source file and commit;
docs/M2PO.md compares the three M2PO readings in one table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from harness.engines.embedded.m2po_mask import (
    NO_CLIP_BOUND,
    OFFICIAL_EPS,
    M2Selection,
    select_m2_mask,
    water_fill_bound,
)

Stats = dict[str, float]
LossFn = Callable[["LossInputs", Any], tuple[torch.Tensor, Stats]]


@dataclass
class LossInputs:
    logp: torch.Tensor         # [N, T] log π_θ(token) of the current policy (requires grad)
    behav_logp: torch.Tensor   # [N, T] log π_behav: the policy that generated the tokens (recorded at sampling)
    prox_logp: torch.Tensor    # [N, T] log π_prox: policy recomputed at the start of this update (no grad)
    advantages: torch.Tensor   # [N] or [N, T] group-normalised advantages (broadcast over tokens)
    mask: torch.Tensor         # [N, T] bool, valid (generated) tokens
    micro_batch: torch.Tensor | None = None  # [N] micro-batch id per row, read by m2po/areal (None: one micro-batch)


# ---------------------------------------------------------------------------------------------------------------
# shared pieces
# ---------------------------------------------------------------------------------------------------------------

class _Batch:
    """The tensors every loss needs, with padding made harmless (log ratios are 0 outside the mask)."""

    def __init__(self, x: LossInputs):
        self.mask = x.mask.bool()
        self.n_valid = int(self.mask.sum())
        self.denom = max(self.n_valid, 1)
        adv = x.advantages.detach()
        if adv.dim() == 1:
            adv = adv.unsqueeze(-1)
        self.adv = torch.where(self.mask, adv.expand_as(x.logp), torch.zeros((), dtype=x.logp.dtype))
        zero = torch.zeros((), dtype=x.logp.dtype)
        behav = x.behav_logp.detach()
        prox = x.prox_logp.detach()
        # log π_θ/π_behav with grad, log π_θ/π_prox with grad, log π_prox/π_behav without
        self.log_r_behav = torch.where(self.mask, x.logp - behav, zero)
        self.log_r_prox = torch.where(self.mask, x.logp - prox, zero)
        self.log_w = torch.where(self.mask, prox - behav, zero)
        self.maskf = self.mask.to(x.logp.dtype)

    def mean(self, per_token: torch.Tensor) -> torch.Tensor:
        """Sum over valid tokens divided by the number of valid tokens (all of them, masked or not)."""
        return torch.where(self.mask, per_token, torch.zeros((), dtype=per_token.dtype)).sum() / self.denom

    def frac(self, flags: torch.Tensor) -> float:
        return float((flags & self.mask).sum()) / self.denom


def _cfg(cfg: Any, key: str) -> float:
    value = getattr(cfg, key, None)
    if value is None:
        raise ValueError(f"algo config has no '{key}', needed by this loss")
    return float(value)


def _base_stats(b: _Batch) -> Stats:
    """approx_kl (k3 vs the behaviour policy) and is_ratio_mean, shared by all losses."""
    with torch.no_grad():
        log_r = b.log_r_behav.detach()
        r = log_r.exp()
        return {
            "clip_frac": 0.0,
            "m2_before": 0.0,
            "m2_after": 0.0,
            "masked_frac": 0.0,
            "approx_kl": float(b.mean((r - 1.0) - log_r)),
            "is_ratio_mean": float(b.mean(r)),
            "behav_rejected_frac": 0.0,
        }


def _ppo_clip_terms(ratio: torch.Tensor, adv: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token max(−A r, −A clip(r, 1−ε, 1+ε)) and the flag 'clipped branch strictly larger'."""
    pg1 = -adv * ratio
    pg2 = -adv * torch.clamp(ratio, 1.0 - eps, 1.0 + eps)
    return torch.max(pg1, pg2), pg1.detach() < pg2.detach()


def _m2_stats(stats: Stats, sel: M2Selection) -> None:
    stats.update(m2_before=sel.m2_before, m2_after=sel.m2_after, masked_frac=sel.masked_frac)


def _decoupled(b: _Batch, cfg: Any, eps: float, keep: torch.Tensor, stats: Stats) -> torch.Tensor:
    """AReaL's decoupled PPO term on the tokens in ``keep``: w · max(−A r, −A clip(r)), r = π_θ/π_prox,
    w = π_prox/π_behav (no grad) set to 0 where w > behav_imp_weight_cap."""
    cap = _cfg(cfg, "behav_imp_weight_cap")
    ratio = b.log_r_prox.exp()
    pg, clipped = _ppo_clip_terms(ratio, b.adv, eps)
    w = b.log_w.exp()
    accepted = w <= cap
    w = torch.where(accepted & keep, w, torch.zeros((), dtype=w.dtype))
    stats["clip_frac"] = b.frac(clipped & keep)
    stats["behav_rejected_frac"] = b.frac(~accepted)
    return b.mean(pg * w)


# ---------------------------------------------------------------------------------------------------------------
# the losses
# ---------------------------------------------------------------------------------------------------------------

def grpo_clip(x: LossInputs, cfg: Any) -> tuple[torch.Tensor, Stats]:
    """GRPO with token-level PPO-clip against the behaviour policy.

    r_t = π_θ/π_behav, loss = (1/N) Σ_valid max(−A_t r_t, −A_t clip(r_t, 1−ε, 1+ε)), ε = ``eps_clip``, N = number
    of valid tokens. There is no proximal policy: π_old of PPO is the policy that generated the tokens, so under
    staleness the clip range is centred on the stale policy. ``clip_frac`` counts valid tokens where the clipped
    branch is strictly larger (the one that gives no gradient), the usual PPO/AReaL definition.
    """
    b = _Batch(x)
    stats = _base_stats(b)
    pg, clipped = _ppo_clip_terms(b.log_r_behav.exp(), b.adv, _cfg(cfg, "eps_clip"))
    stats["clip_frac"] = b.frac(clipped)
    return b.mean(pg), stats


def grpo_decoupled(x: LossInputs, cfg: Any) -> tuple[torch.Tensor, Stats]:
    """AReaL's decoupled PPO ("GRPO" of AReaL's gsm8k_grpo.yaml with ``use_decoupled_loss: true``).

    Follows ``ppo_actor_loss_fn`` in inclusionAI/AReaL ``areal/utils/functional.py`` (commit 072480e, the version with
    ``behav_imp_weight_cap``): r_t = π_θ/π_prox is clipped to [1−ε, 1+ε] (ε = ``eps_clip``), the PPO term
    max(−A r, −A clip(r)) is multiplied by the behaviour weight w_t = π_prox/π_behav (no gradient), and tokens with
    w_t > ``behav_imp_weight_cap`` get weight 0 (AReaL's rejection; they stay in the denominator, as AReaL keeps its
    loss mask unchanged). Loss = (1/N) Σ_valid w_t · max(−A r, −A clip(r)).
    ``clip_frac`` is measured on r = π_θ/π_prox; ``behav_rejected_frac`` is the fraction rejected by the cap.
    """
    b = _Batch(x)
    stats = _base_stats(b)
    loss = _decoupled(b, cfg, _cfg(cfg, "eps_clip"), b.mask, stats)
    return loss, stats


def _trust_region(b: _Batch) -> torch.Tensor:
    """The trust-region ("harmful") tokens T of the official M2PO code (``_get_trust_region_tokens_delta_sq`` in
    Infini-AI-Lab/M2PO ``verl/trainer/ppo/core_algos.py``, commit af54a3e): valid tokens with A > 1e-12 and
    r > 1 + 1e-12, or A < −1e-12 and r < 1 − 1e-12, where r = π_θ/π_behav (detached)."""
    ratio = b.log_r_behav.detach().exp()
    return b.mask & (((b.adv > OFFICIAL_EPS) & (ratio > 1.0 + OFFICIAL_EPS))
                     | ((b.adv < -OFFICIAL_EPS) & (ratio < 1.0 - OFFICIAL_EPS)))


def m2po_paper(x: LossInputs, cfg: Any) -> tuple[torch.Tensor, Stats]:
    """M2PO, Algorithm 1 of arXiv 2510.01161: mask the trust-region tokens with the largest (log r)².

    r_t = π_θ/π_behav (the policy that generated the tokens, as the official code's ``old_log_prob`` recorded at
    generation and queued for ``stale_iteration`` steps). s_t = (log r_t)², detached. The population is the
    trust-region tokens T (``_trust_region``): M2 = mean of s over T (the official code divides by |T|); while
    M2 > τ (``m2_threshold``) the token of T with the largest s is dropped and M2 recomputed over the remaining T
    (``m2po_mask.select_m2_mask``; ties: earlier token first). Tokens outside T are always kept. Selection runs once
    over the tensors passed in (one micro-batch). Loss = −(1/N) Σ_valid M_t r_t A_t, N = all valid tokens (dropped ones
    included), no ε-clip. τ = inf keeps every token, which makes this loss identical to ``is/plain``.
    ``masked_frac`` = dropped tokens ÷ valid tokens; ``m2_before`` / ``m2_after`` are means over T.
    """
    b = _Batch(x)
    stats = _base_stats(b)
    sel = select_m2_mask(b.log_r_behav.detach().square(), b.mask, _trust_region(b), _cfg(cfg, "m2_threshold"))
    _m2_stats(stats, sel)
    return _is_term(b, sel.keep), stats


def m2po_official(x: LossInputs, cfg: Any) -> tuple[torch.Tensor, Stats]:
    """M2PO as the official code trains (``compute_m2po_policy_loss`` in Infini-AI-Lab/M2PO
    ``verl/trainer/ppo/core_algos.py``, commit af54a3e): a water-filling clip of the harmful tokens, not a mask.

    r_t = π_θ/π_behav. Over the trust-region tokens T, ``m2po_mask.water_fill_bound`` finds the bound τ such that
    capping (log r)² at τ² brings the mean over T to the budget (``m2_threshold``; the largest breakpoint below it,
    as the official solver returns). Every token then gets PPO-clip with the ratio clamped to [e^−τ, e^τ]:
    loss = (1/N) Σ_valid max(−A r, −A clamp(r, e^−τ, e^τ)); when M2 over T is within the budget the bounds are the
    official "no clip" values [0, 100000]. Computed per micro-batch, as the official actor calls it per micro-batch.
    The official ``miniclip_low`` / ``miniclip_high`` floors are unset in its released training scripts, and unset here.
    ``clip_frac`` and ``masked_frac`` both count valid tokens whose clipped branch is active (they get no gradient);
    ``m2_before`` / ``m2_after`` are the official M2 over T before and after capping.
    """
    b = _Batch(x)
    stats = _base_stats(b)
    log_r = b.log_r_behav.detach()
    tau, m2_before, m2_after = water_fill_bound(log_r[_trust_region(b)].square(), _cfg(cfg, "m2_threshold"))
    low, high = (0.0, NO_CLIP_BOUND) if math.isinf(tau) else (math.exp(-tau), math.exp(tau))
    ratio = b.log_r_behav.exp()
    pg1 = -b.adv * ratio
    pg2 = -b.adv * torch.clamp(ratio, low, high)
    clipped = pg2.detach() > pg1.detach()
    stats.update(m2_before=m2_before, m2_after=m2_after, clip_frac=b.frac(clipped), masked_frac=b.frac(clipped))
    return b.mean(torch.max(pg1, pg2)), stats


def m2po_areal(x: LossInputs, cfg: Any) -> tuple[torch.Tensor, Stats]:
    """M2PO as AReaL implements it (``actor.m2_threshold``, gsm8k_m2po.yaml), denominator and micro-batch weights
    included.

    Follows ``grpo_loss_fn`` → ``_apply_m2po_masking`` / ``_get_m2po_loss_mask`` in inclusionAI/AReaL
    ``areal/trainer/ppo/actor.py`` and ``ppo_actor_loss_fn`` in ``areal/utils/functional/functional.py`` (areal 1.0.4,
    tag v1.0.4 = commit 37d6c64), per micro-batch:
    s_t = (log π_prox/π_behav)², every valid token is a candidate, the top-s tokens are dropped until the mean of the
    rest is strictly below τ, and AReaL never drops every token (it keeps the smallest one). The kept tokens then go
    through the decoupled PPO term of ``grpo/decoupled`` (behaviour weight π_prox/π_behav, rejected above
    ``behav_imp_weight_cap``) with ε = ``eps_clip``; AReaL's M2PO yaml sets ``eps_clip: 0.0``. That is not "no clip":
    clip(r, 1, 1) ≡ 1, so the term is w · max(−A r, −A); where r = π_θ/π_prox = 1 exactly (one minibatch, or the first
    of several) both branches tie and the gradient is that of −w A r, afterwards only tokens whose ratio moved against
    their advantage keep a gradient.
    Denominator: AReaL's token mean over the tokens the M2PO mask *kept* (``ppo_actor_loss_fn`` counts the loss mask it
    is given, after M2PO masking and before rejection sampling), so masking raises the weight of the kept tokens; each
    micro-batch's mean is weighted by its share of valid tokens (``loss_weight_fn = loss_mask.count_nonzero()`` on the
    unmasked mask in ``PPOActor.ppo_update``): loss = Σ_mb (n_valid_mb / n_valid) · Σ_{kept in mb} term / n_kept_mb.
    Micro-batches are given by ``LossInputs.micro_batch`` (a micro-batch id per row); without it the whole batch is
    one micro-batch, as AReaL packs a minibatch that fits in ``max_tokens_per_mb``.
    Stats: ``masked_frac`` = dropped ÷ valid tokens over the batch; ``m2_before`` / ``m2_after`` and ``clip_frac`` are
    weighted across micro-batches by their valid tokens.
    """
    b = _Batch(x)
    stats = _base_stats(b)
    tau, cap, eps = _cfg(cfg, "m2_threshold"), _cfg(cfg, "behav_imp_weight_cap"), _cfg(cfg, "eps_clip")
    groups = [None] if x.micro_batch is None else [x.micro_batch == mb for mb in torch.unique(x.micro_batch)]
    ratio = b.log_r_prox.exp()
    pg, clipped = _ppo_clip_terms(ratio, b.adv, eps)
    w = b.log_w.exp()
    accepted = w <= cap
    loss = torch.where(b.mask, pg, torch.zeros((), dtype=pg.dtype)).sum() * 0.0   # in the graph even with no token
    keep_all = torch.zeros_like(b.mask)
    m2_before = m2_after = 0.0
    for rows in groups:
        valid = b.mask if rows is None else b.mask & rows.unsqueeze(-1)
        n_valid_mb = int(valid.sum())
        if n_valid_mb == 0:
            continue
        sel = select_m2_mask(b.log_w.square(), valid, valid, tau, strict=True, keep_one=True)
        keep_all |= sel.keep
        n_kept = max(int(sel.keep.sum()), 1)
        term = torch.where(sel.keep & accepted, pg * w, torch.zeros((), dtype=pg.dtype)).sum() / n_kept
        share = n_valid_mb / b.denom
        loss = loss + share * term
        m2_before += share * sel.m2_before
        m2_after += share * sel.m2_after
    stats.update(m2_before=m2_before, m2_after=m2_after, masked_frac=b.frac(b.mask & ~keep_all),
                 clip_frac=b.frac(clipped & keep_all), behav_rejected_frac=b.frac(~accepted))
    return loss, stats


def _is_term(b: _Batch, keep: torch.Tensor) -> torch.Tensor:
    """−(1/N) Σ keep_t r_t A_t, r = π_θ/π_behav; the one expression behind both is/plain and m2po/paper."""
    ratio = b.log_r_behav.exp()
    return b.mean(-(ratio * b.adv) * keep.to(ratio.dtype))


def is_plain(x: LossInputs, cfg: Any) -> tuple[torch.Tensor, Stats]:
    """Plain token-level importance sampling, the collapse baseline of arXiv 2510.01161.

    Loss = −(1/N) Σ_valid r_t A_t with r_t = π_θ/π_behav: no clip, no mask, no proximal policy.
    """
    b = _Batch(x)
    return _is_term(b, b.mask), _base_stats(b)


LOSSES: dict[str, LossFn] = {
    "grpo/clip": grpo_clip,
    "grpo/decoupled": grpo_decoupled,
    "m2po/paper": m2po_paper,
    "m2po/official": m2po_official,
    "m2po/areal": m2po_areal,
    "is/plain": is_plain,
}


def get_loss(name: str, variant: str) -> LossFn:
    """The loss registered as "<name>/<variant>" (``cfg.algo.name``, ``cfg.algo.variant``)."""
    key = f"{name}/{variant}"
    try:
        return LOSSES[key]
    except KeyError:
        raise KeyError(f"unknown loss '{key}'; known: {', '.join(sorted(LOSSES))}") from None
