"""One RL update on one batch, and the held-out evaluation; the engine loop around them lives in engine.py.

Update: group-normalised advantages A = (R − mean_group R) / (std_group R + 1e-6) shared by every token of a sample;
π_prox = the policy at the start of the update (recomputed, no grad); `ppo_n_minibatches` optimiser steps over
disjoint groups of prompts; gradient clipping at `grad_clip` with the pre-clip norm reported.
Every log-prob that enters a ratio is of the sampling distribution softmax(logits / engine.temperature), the one the
behaviour log-probs were recorded under (AReaL's and verl's convention); otherwise at temperature ≠ 1 no ratio is 1
even on-policy. The forward computes only the positions of valid answer tokens (packed): the padding after an EOS
is read by no loss.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch

from harness.engines.embedded.losses import LossInputs, get_loss
from harness.engines.embedded.model import (
    NonFinite,
    TinyGPT,
    decode_rows,
    sample_greedy_and_tempered,
    sequence_logprobs,
)
from harness.engines.embedded.rollout import Batch, prompt_tensor
from harness.engines.embedded.task import ProblemSet, reward
from harness.store.metrics import EVAL_REWARD, EVAL_REWARD_SAMPLED


class Adam:
    """Adam without weight decay, step for step torch.optim.Adam's default CPU update (the same element-wise ops, so
    the same bits), with the same state_dict layout: a checkpoint of either resumes in the other, bit for bit.
    Why not torch.optim.Adam (benchmarks/optimizer_bench.py, reports/bench_optimizer.md): the first torch optimiser
    of a process imports torch._dynamo, 1.5-1.7 CPU-s, paid once per warm worker but once per trail wherever a trail
    has a process of its own (Slurm, backend.workers=process, `harness run`); and torch's CPU update takes 2.6 ms a
    step of the default model against 1.0 ms here (1.5 ms with foreach=True): 1.3 CPU-s of a default trail."""

    def __init__(self, params: Sequence[torch.Tensor], lr: float, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        self.params = list(params)
        self.lr, self.betas, self.eps = float(lr), betas, float(eps)
        self.step_count = 0
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = self.betas
        pairs = [(p, g, m, v) for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq, strict=True)
                 if (g := p.grad) is not None]
        if not pairs:
            return
        params, grads, exp_avg, exp_avg_sq = (list(x) for x in zip(*pairs, strict=True))
        self.step_count += 1
        torch._foreach_lerp_(exp_avg, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sq, beta2)
        torch._foreach_addcmul_(exp_avg_sq, grads, grads, 1 - beta2)
        bias_correction1 = 1 - beta1 ** self.step_count
        bias_correction2_sqrt = (1 - beta2 ** self.step_count) ** 0.5
        denom = torch._foreach_sqrt(exp_avg_sq)
        torch._foreach_div_(denom, bias_correction2_sqrt)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(params, exp_avg, denom, -self.lr / bias_correction1)

    def state_dict(self) -> Dict[str, Any]:
        state = {} if self.step_count == 0 else {
            i: {"step": torch.tensor(float(self.step_count)), "exp_avg": m.clone(), "exp_avg_sq": v.clone()}
            for i, (m, v) in enumerate(zip(self.exp_avg, self.exp_avg_sq, strict=True))}
        return {"state": state, "param_groups": [{"lr": self.lr, "betas": self.betas, "eps": self.eps,
                                                  "weight_decay": 0.0, "amsgrad": False,
                                                  "params": list(range(len(self.params)))}]}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Also reads the state_dict of a torch.optim.Adam over the same parameters."""
        state = state_dict["state"]
        self.step_count = int(float(state[0]["step"])) if state else 0
        for i, (m, v) in enumerate(zip(self.exp_avg, self.exp_avg_sq, strict=True)):
            if i in state:
                m.copy_(state[i]["exp_avg"])
                v.copy_(state[i]["exp_avg_sq"])


def advantages(rewards: torch.Tensor, group: int) -> torch.Tensor:
    r = rewards.view(-1, group)
    return ((r - r.mean(1, keepdim=True)) / (r.std(1, unbiased=False, keepdim=True) + 1e-6)).reshape(-1)


class Trainer:
    def __init__(self, policy: TinyGPT, cfg: Any, problems: ProblemSet):
        self.policy, self.cfg, self.problems = policy, cfg, problems
        eng = cfg.engine
        self.group, self.n_mb, self.clip = int(eng.group_size), int(eng.ppo_n_minibatches), float(eng.grad_clip)
        self.temperature = float(eng.temperature)
        self.loss_fn = get_loss(cfg.algo.name, cfg.algo.variant)
        self.params = list(policy.parameters())
        self.opt = Adam(self.params, lr=float(eng.lr))

    def update(self, batch: Batch) -> Dict[str, float]:
        params = self.params
        prompts = prompt_tensor(self.problems, batch.prompt_idx)
        adv = advantages(batch.rewards, self.group)
        width = max(int(batch.mask.sum(1).max()), 1)          # the longest answer; later columns are all padding
        tokens, behav, valid = batch.tokens[:, :width], batch.behav_logp[:, :width], batch.mask[:, :width]
        n_groups = len(batch.prompt_idx)
        prox: Optional[torch.Tensor] = None
        if self.n_mb > 1:
            with torch.no_grad():
                prox, _ = sequence_logprobs(self.policy, prompts, self.group, tokens, self.temperature, valid)
        sums: Dict[str, float] = {}
        per = n_groups // self.n_mb
        rows: Union[slice, torch.Tensor]
        for m in range(self.n_mb):
            if self.n_mb == 1:
                rows, mb_prompts = slice(None), prompts
            else:
                groups = list(range(m * per, (m + 1) * per))
                rows = torch.tensor([g * self.group + j for g in groups for j in range(self.group)])
                mb_prompts = prompts[groups]
            mask = valid[rows]
            logp, entropy = sequence_logprobs(self.policy, mb_prompts, self.group, tokens[rows], self.temperature, mask)
            prox_mb = logp.detach() if prox is None else prox[rows]
            inputs = LossInputs(logp=logp, behav_logp=behav[rows], prox_logp=prox_mb, advantages=adv[rows], mask=mask)
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
        with torch.no_grad():
            if not bool(torch.cat([p.view(-1) for p in params]).isfinite().all()):
                raise NonFinite("non-finite weights after the optimiser step")
        return sums


def evaluate(policy: TinyGPT, problems: ProblemSet, n: int, max_new: int, temperature: float,
             generator: torch.Generator, chunk: int = 256, indices: Optional[Sequence[int]] = None) -> Dict[str, float]:
    """Greedy and sampled (temperature `temperature`) accuracy on the first `n` held-out problems, or on the problems
    at `indices` (then `n` is ignored). Both answers to a chunk come from one prompt pass; the sampled ones are the
    tokens a separate sampling call would draw."""
    order: List[int] = list(range(n)) if indices is None else list(indices)
    greedy = sampled = 0.0
    for lo in range(0, len(order), chunk):
        idx = order[lo:lo + chunk]
        g_tokens, s_tokens = sample_greedy_and_tempered(policy, prompt_tensor(problems, idx), max_new, temperature,
                                                        generator)
        greedy += sum(reward(text, problems[i]) for text, i in zip(decode_rows(g_tokens), idx, strict=True))
        sampled += sum(reward(text, problems[i]) for text, i in zip(decode_rows(s_tokens), idx, strict=True))
    size = max(len(order), 1)
    return {EVAL_REWARD: greedy / size, EVAL_REWARD_SAMPLED: sampled / size}
