"""Rollouts: B prompts × G samples from a given policy version, rewarded, packed into one batch record.

A batch keeps only what training needs and what a checkpoint must hold: prompt indices (the text is regenerated from
the task), sampled tokens, behaviour log-probs recorded at sampling, the valid-token mask, rewards, and the policy
version that generated each group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch

from harness.engines.embedded.model import BOS, TinyGPT, decode_rows, encode, pad_prompts, sample
from harness.engines.embedded.task import ProblemSet, reward


@dataclass
class Batch:
    prompt_idx: List[int]        # [B] indices into the train problem stream
    tokens: torch.Tensor         # [B*G, T] sampled tokens (PAD after EOS)
    behav_logp: torch.Tensor     # [B*G, T] log π_behav of each sampled token
    mask: torch.Tensor           # [B*G, T] bool, generated tokens (up to and including EOS)
    rewards: torch.Tensor        # [B*G] 1/0
    versions: List[int]          # [B] policy version that generated each group

    def to_state(self) -> Dict[str, Any]:
        """Tensors and lists only, so a checkpoint holding it loads with torch.load(weights_only=True)."""
        return {"prompt_idx": list(self.prompt_idx), "tokens": self.tokens, "behav_logp": self.behav_logp,
                "mask": self.mask, "rewards": self.rewards, "versions": list(self.versions)}

    @staticmethod
    def from_state(state: Dict[str, Any]) -> Batch:
        return Batch([int(i) for i in state["prompt_idx"]], state["tokens"], state["behav_logp"], state["mask"],
                     state["rewards"], [int(v) for v in state["versions"]])

    @property
    def n_tokens(self) -> int:
        return int(self.mask.sum())

    def select(self, groups: List[int], group_size: int) -> Batch:
        rows = [g * group_size + j for g in groups for j in range(group_size)]
        return Batch([self.prompt_idx[g] for g in groups], self.tokens[rows], self.behav_logp[rows], self.mask[rows],
                     self.rewards[rows], [self.versions[g] for g in groups])

    @staticmethod
    def concat(parts: List[Batch]) -> Batch:
        width = max(p.tokens.shape[1] for p in parts)

        def pad(x: torch.Tensor, value: float) -> torch.Tensor:
            return torch.nn.functional.pad(x, (0, width - x.shape[1]), value=value)

        return Batch(sum((p.prompt_idx for p in parts), []), torch.cat([pad(p.tokens, 0) for p in parts]),
                     torch.cat([pad(p.behav_logp, 0.0) for p in parts]), torch.cat([pad(p.mask, False) for p in parts]),
                     torch.cat([p.rewards for p in parts]), sum((p.versions for p in parts), []))


def prompt_tensor(problems: ProblemSet, indices: List[int]) -> torch.Tensor:
    return pad_prompts([[BOS] + encode(problems[i].question) for i in indices])


def generate(policy: TinyGPT, problems: ProblemSet, indices: List[int], group: int, max_new: int,
             temperature: float, generator: Optional[torch.Generator], version: int) -> Batch:
    """Sample `group` answers to each problem in `indices` with `policy` (which is at `version`) and reward them."""
    tokens, logp, mask = sample(policy, prompt_tensor(problems, indices), group, max_new, temperature, generator)
    rewards = torch.tensor([reward(text, problems[indices[i // group]]) for i, text in enumerate(decode_rows(tokens))])
    return Batch(list(indices), tokens, logp, mask, rewards, [version] * len(indices))
