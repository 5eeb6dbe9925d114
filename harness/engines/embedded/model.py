"""A tiny causal character transformer (nanoGPT-shaped) with a prompt cache shared by the G samples of a group.

Why the shared prompt cache: every prompt is answered G times. Running the prompt once and letting all G
continuations attend to its keys/values is exact (same result as G full sequences) and makes both sampling and the
training forward G times cheaper on the prompt part, which is most of the sequence here.
Prompts are left-padded; positions count from each prompt's first real character.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

PAD, BOS, EOS = 0, 1, 2
CHARS = " #0123456789,.?-+=*abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
VOCAB = ["<pad>", "<bos>", "<eos>"] + list(CHARS)
STOI = {c: i for i, c in enumerate(VOCAB)}


def encode(text: str) -> List[int]:
    return [STOI[c] for c in text]


def decode(ids) -> str:
    out = []
    for i in ids:
        i = int(i)
        if i == EOS:
            break
        if i > EOS:
            out.append(VOCAB[i])
    return "".join(out)


@dataclass
class ModelConfig:
    n_layer: int = 3
    n_embd: int = 64
    n_head: int = 4
    block_size: int = 96


class NonFinite(Exception):
    """A NaN/inf loss, gradient, weight or logit: the trail has diverged."""


Cache = List[Tuple[torch.Tensor, torch.Tensor]]  # per layer (k, v): [N, H, L, D]


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = nn.Sequential(nn.Linear(cfg.n_embd, 4 * cfg.n_embd), nn.GELU(), nn.Linear(4 * cfg.n_embd, cfg.n_embd))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, past: Optional[Tuple[torch.Tensor, torch.Tensor]]):
        n, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(n, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(y.transpose(1, 2).reshape(n, t, c))
        x = x + self.mlp(self.ln2(x))
        return x, (k, v)


class TinyGPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(len(VOCAB), cfg.n_embd)
        self.pos = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, len(VOCAB), bias=False)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    def _run(self, ids: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor, past: Optional[Cache]):
        x = self.tok(ids) + self.pos(pos.clamp(max=self.cfg.block_size - 1))
        new: Cache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, mask, None if past is None else past[i])
            new.append(kv)
        return self.head(self.ln_f(x)), new

    def prompt(self, ids: torch.Tensor) -> Tuple[torch.Tensor, Cache, torch.Tensor, torch.Tensor]:
        """Run left-padded prompts [B, Lp]. Returns (logits at the last position, cache, key-valid mask, lengths)."""
        valid = ids != PAD
        pos = (valid.cumsum(1) - 1).clamp(min=0)
        t = ids.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool).tril()
        # a pad query may see itself so no attention row is empty (its output is never used)
        mask = (causal & valid[:, None, :]) | torch.eye(t, dtype=torch.bool)
        logits, cache = self._run(ids, pos, mask[:, None], None)
        return logits[:, -1], cache, valid, valid.sum(1)

    def continuation(self, ids: torch.Tensor, cache: Cache, key_valid: torch.Tensor, start: torch.Tensor):
        """Run continuation tokens [N, Lc] after cached keys. key_valid [N, Lk] marks real cached keys; start [N] is
        the position of ids[:, 0]. Returns (logits [N, Lc, V], cache extended by these tokens)."""
        lc = ids.shape[1]
        pos = start[:, None] + torch.arange(lc)[None, :]
        causal = torch.ones(lc, lc, dtype=torch.bool).tril()
        mask = torch.cat([key_valid[:, None, :].expand(-1, lc, -1), causal[None].expand(ids.shape[0], -1, -1)], 2)
        return self._run(ids, pos, mask[:, None], cache)


def expand_cache(cache: Cache, repeats: int) -> Cache:
    """Share each prompt's keys/values with its `repeats` samples (gradients flow back to the one prompt pass)."""
    return [(k.repeat_interleave(repeats, 0), v.repeat_interleave(repeats, 0)) for k, v in cache]


def pad_prompts(prompts: List[List[int]]) -> torch.Tensor:
    """Left-pad encoded prompts (each starting with BOS) to one [B, Lp] tensor."""
    width = max(len(p) for p in prompts)
    out = torch.full((len(prompts), width), PAD, dtype=torch.long)
    for i, p in enumerate(prompts):
        out[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
    return out


@torch.no_grad()
def sample(model: TinyGPT, prompt_ids: torch.Tensor, group: int, max_new: int, temperature: float,
           generator: Optional[torch.Generator]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample `group` continuations per prompt. temperature 0 = greedy.
    Returns tokens [B*G, max_new] (PAD after EOS), behaviour log-probs [B*G, max_new] at temperature 1 of the
    sampling distribution, and the valid-token mask (tokens up to and including EOS)."""
    logits, cache, valid, lengths = model.prompt(prompt_ids)
    n = prompt_ids.shape[0] * group
    cache = expand_cache(cache, group)
    key_valid = valid.repeat_interleave(group, 0)
    pos = lengths.repeat_interleave(group, 0)
    logits = logits.repeat_interleave(group, 0)
    tokens = torch.full((n, max_new), PAD, dtype=torch.long)
    logps = torch.zeros(n, max_new)
    alive = torch.ones(n, dtype=torch.bool)
    mask = torch.zeros(n, max_new, dtype=torch.bool)
    for j in range(max_new):
        if not bool(torch.isfinite(logits).all()):
            raise NonFinite("non-finite logits while sampling")
        logp_all = torch.log_softmax(logits.float() / (temperature if temperature > 0 else 1.0), -1)
        if temperature > 0:
            nxt = torch.multinomial(logp_all.exp(), 1, generator=generator).squeeze(1)
        else:
            nxt = logp_all.argmax(-1)
        nxt = torch.where(alive, nxt, torch.full_like(nxt, PAD))
        tokens[:, j] = nxt
        logps[:, j] = torch.where(alive, logp_all.gather(1, nxt[:, None]).squeeze(1), torch.zeros(()))
        mask[:, j] = alive
        alive = alive & (nxt != EOS)
        if not alive.any() or j == max_new - 1:
            break
        step_logits, cache = model.continuation(nxt[:, None], cache, key_valid, pos + j)
        key_valid = torch.cat([key_valid, torch.ones(n, 1, dtype=torch.bool)], 1)
        logits = step_logits[:, -1]
    return tokens, logps, mask


def sequence_logprobs(model: TinyGPT, prompt_ids: torch.Tensor, group: int, tokens: torch.Tensor
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Log-probs [B*G, Lc] of `tokens` under `model` (with grad), and per-token entropy, in one prompt pass plus one
    continuation pass. Must agree with `sample`'s behaviour log-probs when the weights are the same."""
    logits0, cache, valid, lengths = model.prompt(prompt_ids)
    cache = expand_cache(cache, group)
    key_valid = valid.repeat_interleave(group, 0)
    start = lengths.repeat_interleave(group, 0)
    inputs = tokens[:, :-1]
    cont_logits, _ = model.continuation(inputs, cache, key_valid, start) if inputs.shape[1] else (None, None)
    first = logits0.repeat_interleave(group, 0)[:, None]
    logits = first if cont_logits is None else torch.cat([first, cont_logits], 1)
    logp_all = torch.log_softmax(logits.float(), -1)
    logp = logp_all.gather(2, tokens[..., None]).squeeze(2)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
