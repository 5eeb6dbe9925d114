"""One RL update on one batch, and the held-out evaluation; the engine loop around them lives in engine.py.

Update: group-normalised advantages A = (R − mean_group R) / (std_group R + 1e-6) shared by every token of a sample;
π_prox = the policy at the start of the update (recomputed, no grad); `ppo_n_minibatches` optimiser steps over
disjoint groups of prompts; gradient clipping at `grad_clip` with the pre-clip norm reported.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

import torch

from harness.engines.embedded.losses import LossInputs, get_loss
from harness.engines.embedded.model import NonFinite, TinyGPT, decode, sample, sequence_logprobs
from harness.engines.embedded.rollout import Batch, prompt_tensor
from harness.engines.embedded.task import ProblemSet, reward


def advantages(rewards: torch.Tensor, group: int) -> torch.Tensor:
    r = rewards.view(-1, group)
    return ((r - r.mean(1, keepdim=True)) / (r.std(1, unbiased=False, keepdim=True) + 1e-6)).reshape(-1)


class Trainer:
    def __init__(self, policy: TinyGPT, cfg: Any, problems: ProblemSet):
        self.policy, self.cfg, self.problems = policy, cfg, problems
        eng = cfg.engine
        self.group, self.n_mb, self.clip = int(eng.group_size), int(eng.ppo_n_minibatches), float(eng.grad_clip)
        self.loss_fn = get_loss(cfg.algo.name, cfg.algo.variant)
        self.opt = torch.optim.Adam(policy.parameters(), lr=float(eng.lr))

    def update(self, batch: Batch) -> Dict[str, float]:
        params = [p for p in self.policy.parameters()]
        prompts = prompt_tensor(self.problems, batch.prompt_idx)
        adv = advantages(batch.rewards, self.group)
        n_groups = len(batch.prompt_idx)
        prox: Optional[torch.Tensor] = None
        if self.n_mb > 1:
            with torch.no_grad():
                prox, _ = sequence_logprobs(self.policy, prompts, self.group, batch.tokens)
        sums: Dict[str, float] = {}
        per = n_groups // self.n_mb
        for m in range(self.n_mb):
            groups = list(range(m * per, (m + 1) * per))
            rows = torch.tensor([g * self.group + j for g in groups for j in range(self.group)])
            logp, entropy = sequence_logprobs(self.policy, prompts[groups], self.group, batch.tokens[rows])
            mask = batch.mask[rows]
            prox_mb = logp.detach() if prox is None else prox[rows]
            inputs = LossInputs(logp=logp, behav_logp=batch.behav_logp[rows], prox_logp=prox_mb,
                                advantages=adv[rows], mask=mask)
            loss, stats = self.loss_fn(inputs, self.cfg.algo)
            if not torch.isfinite(loss):
                raise NonFinite(f"non-finite loss {loss.item()}")
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.clip))
            if not math.isfinite(grad_norm):
                raise NonFinite(f"non-finite gradient norm {grad_norm}")
            self.opt.step()
            stats = dict(stats, loss=loss.item(), grad_norm=grad_norm,
                         entropy=float((entropy.detach() * mask).sum() / mask.sum().clamp(min=1)))
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + float(v) / self.n_mb
        if not all(bool(torch.isfinite(p).all()) for p in params):
            raise NonFinite("non-finite weights after the optimiser step")
        return sums


@torch.no_grad()
def evaluate(policy: TinyGPT, problems: ProblemSet, n: int, max_new: int, temperature: float,
             generator: torch.Generator, chunk: int = 256) -> Dict[str, float]:
    """Greedy and sampled (temperature `temperature`) accuracy on the first `n` held-out problems."""
    greedy = sampled = 0.0
    for lo in range(0, n, chunk):
        idx: List[int] = list(range(lo, min(n, lo + chunk)))
        prompts = prompt_tensor(problems, idx)
        for temp in (0.0, temperature):
            tokens, _, _ = sample(policy, prompts, 1, max_new, temp, generator if temp > 0 else None)
            right = sum(reward(decode(t), problems[i]) for t, i in zip(tokens, idx))
            if temp == 0.0:
                greedy += right
            else:
                sampled += right
    return {"eval/reward": greedy / n, "eval/reward_sampled": sampled / n}
