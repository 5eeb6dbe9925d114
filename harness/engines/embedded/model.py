"""A tiny causal character transformer (nanoGPT-shaped) with a prompt cache shared by the G samples of a group.

Why the shared prompt cache: every prompt is answered G times. Running the prompt once and letting all G
continuations attend to its keys/values is exact (same result as G full sequences) and makes both sampling and the
training forward G times cheaper on the prompt part, which is most of the sequence here.
Prompts are left-padded; positions count from each prompt's first real character.

Why the decode loop looks the way it does: at this size (width 64, heads of 16) a decode step is a few µs of
arithmetic per op, so the cost is the number of ops and the bytes they copy, not FLOPs. Sampling therefore writes keys
and values into buffers allocated once (no `torch.cat` of the whole cache per token), attends with two small matmuls
and an additive mask (no boolean-mask SDPA), drops rows that have finished, runs under `inference_mode`, and computes
the LM head only where a next token is read. The random draw is the exponential race behind `torch.multinomial`
(token = argmax p / q, q ~ Exp(1) per row and vocabulary entry), with q made from uniforms (`exponential_log`, a
quarter of the cost of `exponential_`), drawn for every row of the batch, so dropping finished rows changes no sample.
Why eager PyTorch: at this width torch.compile (Inductor) runs the training step slower than eager and costs minutes
of compiling per process, and bf16 autocast rounds log-probs by about as much as the importance ratios M2PO reads
(both measured by benchmarks/engine_alternatives_bench.py).
Why one module of this size: the model, its cached forward and the sampler share the cache layout, and the sampler's
equality with a plain full-sequence forward (tests/test_engine_model.py) is easiest to keep with both side by side.
"""

from __future__ import annotations

import math
from typing import Iterable, List, Optional, Sequence, Tuple, cast

import torch
import torch.nn as nn

from harness.engines.embedded.config import ModelConfig

PAD, BOS, EOS = 0, 1, 2
CHARS = " #0123456789,.?-+=*abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
VOCAB = ["<pad>", "<bos>", "<eos>"] + list(CHARS)
STOI = {c: i for i, c in enumerate(VOCAB)}
NEG_INF = float("-inf")


def encode(text: str) -> List[int]:
    return [STOI[c] for c in text]


def decode(ids: Iterable) -> str:
    """Text of a token sequence up to its first EOS. A list (``tensor.tolist()``) is the fast path."""
    if isinstance(ids, torch.Tensor):
        ids = ids.tolist()
    out = []
    for i in ids:
        if i == EOS:
            break
        if i > EOS:
            out.append(VOCAB[i])
    return "".join(out)


def decode_rows(tokens: torch.Tensor) -> List[str]:
    """`decode` of every row of a [N, T] token tensor, with one conversion to Python ints for the whole tensor."""
    return [decode(row) for row in tokens.tolist()]


class NonFinite(Exception):
    """A NaN/inf loss, gradient, weight or logit: the trail has diverged."""


Cache = List[Tuple[torch.Tensor, torch.Tensor]]  # per layer (k, v): [N, H, L, D]


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """softmax(q kᵀ / √d + bias) v, written out for tiny heads (head dim 16: two small matmuls beat SDPA with a mask).
    bias is 0 where a key is visible and −inf where it is not; every query sees at least one key."""
    scores = torch.matmul(q, k.transpose(-1, -2)).mul_(1.0 / math.sqrt(q.shape[-1]))
    return torch.matmul(torch.softmax(scores.add_(bias), -1), v)


def attend_grouped(q: torch.Tensor, kp_t: torch.Tensor, vp: torch.Tensor, kc: torch.Tensor, vc: torch.Tensor,
                   bias: torch.Tensor) -> torch.Tensor:
    """Attention of R continuations per prompt: q [B, H, R, T, D] attends to its prompt's keys (transposed: kp_t
    [B, H, D, Lp]) and values vp [B, H, Lp, D], read once per prompt and never copied R times, and to its own
    continuation keys kc/vc [B, H, R, Lk, D].
    bias [B, 1, 1, T, Lp + Lk]: 0 where a key is visible, −inf where not. Returns [B, H, R, T, D]."""
    b, h, r, t, d = q.shape
    lp = kp_t.shape[3]
    s_p = torch.matmul(q.reshape(b, h, r * t, d), kp_t).view(b, h, r, t, lp)
    s = torch.cat([s_p, torch.matmul(q, kc.transpose(-1, -2))], -1).mul_(1.0 / math.sqrt(d))
    # split, not two slices: the backward of a split joins the two gradients, where each slice's backward would fill a
    # zero tensor of the whole of w and the two would then be added (the same numbers, three passes over w fewer)
    w_p, w_c = torch.softmax(s.add_(bias), -1).split([lp, s.shape[-1] - lp], -1)
    y = torch.matmul(w_p.reshape(b, h, r * t, lp), vp).view(b, h, r, t, d)
    if t == 1:  # a decode step: R·B·H products of a 1 × Lk by an Lk × D matrix, cheaper as multiply-and-sum
        return y + (w_c.transpose(-1, -2) * vc).sum(-2, keepdim=True)
    return y + torch.matmul(w_c, vc)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = nn.Sequential(nn.Linear(cfg.n_embd, 4 * cfg.n_embd), nn.GELU(),
                                 nn.Linear(4 * cfg.n_embd, cfg.n_embd))

    def _mlp(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = x + self.proj(y)
        return x + self.mlp(self.ln2(x))

    def forward(self, x: torch.Tensor, bias: torch.Tensor, last_only: bool = False
                ) -> Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """Prompt pass: x [B, T, C] -> (x, (k, v) [B, H, T, D]). With `last_only` the block returns x at the last
        position only ([B, 1, C]): the last block's other positions are read by nothing but their keys and values."""
        n, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(n, t, 3, self.n_head, c // self.n_head).permute(2, 0, 3, 1, 4)
        if last_only:
            x, q, bias, t = x[:, -1:], q[:, :, -1:], bias[:, :, -1:], 1
        return self._mlp(x, attend(q, k, v, bias).transpose(1, 2).reshape(n, t, c)), (k, v)

    def grouped(self, x: torch.Tensor, b: int, kp_t: torch.Tensor, vp: torch.Tensor, bias: torch.Tensor,
                past: Optional[Tuple[torch.Tensor, torch.Tensor, int]] = None,
                packed: Optional[Tuple[torch.Tensor, int, int]] = None) -> torch.Tensor:
        """Continuation pass: x [B·R, T, C], R rows per prompt (prompt-major) after the prompt keys (kp_t, vp as in
        `attend_grouped`; contiguous, so no matmul copies them).
        past = (k buffer, v buffer [B, H, R, W, D], slot): the T = 1 decode step writes its key/value at `slot` and
        attends to slots 0..slot; without past, the T tokens attend causally to each other.
        packed = (sel, B·R, T): x is [P, C], the positions `sel` of the flattened [B·R·T] layout, and only they are
        computed; attention scatters them into that layout, where the other positions are zeros that no selected
        position sees (each row's selected positions are a prefix)."""
        c = x.shape[-1]
        h = self.n_head
        qkv = self.qkv(self.ln1(x))
        if packed is None:
            n, t = x.shape[0], x.shape[1]
        else:
            sel, n, t = packed
            qkv = qkv.new_zeros(n * t, 3 * c).index_copy(0, sel, qkv)
        q, k, v = qkv.view(b, n // b, t, 3, h, c // h).permute(3, 0, 4, 1, 2, 5)
        if past is not None:
            kb, vb, slot = past
            kb[:, :, :, slot:slot + 1] = k
            vb[:, :, :, slot:slot + 1] = v
            k, v = kb[:, :, :, :slot + 1], vb[:, :, :, :slot + 1]
        y = attend_grouped(q, kp_t, vp, k, v, bias).permute(0, 2, 3, 1, 4)
        return self._mlp(x, y.reshape(n, t, c) if packed is None else y.reshape(n * t, c).index_select(0, sel))


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
            bias = getattr(m, "bias", None)
            if isinstance(bias, torch.Tensor):
                nn.init.zeros_(bias)

    def embed(self, ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return self.tok(ids) + self.pos(pos.clamp(max=self.cfg.block_size - 1))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.ln_f(x))

    def prompt(self, ids: torch.Tensor) -> Tuple[torch.Tensor, Cache, torch.Tensor, torch.Tensor]:
        """Run left-padded prompts [B, Lp]. Returns (logits at the last position, cache, key-valid mask, lengths).
        Only keys and values are needed at the other positions, so the last block's attention output, MLP and the
        head run at the last position only (the answer's positions are the ones that carry a loss)."""
        valid = ids != PAD
        pos = (valid.cumsum(1) - 1).clamp(min=0)
        t = ids.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool).tril()
        # a pad query may see itself so no attention row is empty (its output is never used)
        visible = (causal & valid[:, None, :]) | torch.eye(t, dtype=torch.bool)
        bias = torch.zeros(visible.shape).masked_fill_(~visible, NEG_INF)[:, None]
        x = self.embed(ids, pos)
        cache: Cache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, bias, last_only=i == len(self.blocks) - 1)
            cache.append(kv)
        return self.logits(x[:, -1]), cache, valid, valid.sum(1)

    def continuation(self, ids: torch.Tensor, cache: Cache, key_valid: torch.Tensor, start: torch.Tensor,
                     group: int, need: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits [B·G, Lc, V] of continuation tokens ids [B·G, Lc] (G per prompt, prompt-major) after the prompts
        whose cache, key-valid mask [B, Lp] and lengths `start` [B] come from `prompt`. With `need` (bool [B·G, Lc],
        a prefix of each row) only those positions are computed and the logits come packed, [need.sum(), V]."""
        n, lc = ids.shape
        b, lp = key_valid.shape
        pos = start.repeat_interleave(group)[:, None] + torch.arange(lc)[None, :]
        bias = torch.cat([torch.zeros(b, lp).masked_fill_(~key_valid, NEG_INF)[:, None, :].expand(b, lc, lp),
                          torch.full((lc, lc), NEG_INF).triu_(1)[None].expand(b, lc, lc)], 2)[:, None, None]
        packed = None
        if need is None:
            x = self.embed(ids, pos)
        else:
            sel = need.reshape(-1).nonzero().squeeze(1)
            packed = (sel, n, lc)
            x = self.embed(ids.reshape(-1)[sel], pos.reshape(-1)[sel])
        for block, (kp, vp) in zip(self.blocks, cache, strict=True):
            x = cast(Block, block).grouped(x, b, kp.transpose(-1, -2).contiguous(), vp.contiguous(), bias,
                                           packed=packed)
        return self.logits(x)


def exponential_log(rows: int, vocab: int, generator: Optional[torch.Generator]) -> torch.Tensor:
    """log q for q ~ Exp(1) i.i.d., [rows, vocab]: log(−log U) of uniforms. argmax(log p − log q) is a draw from p
    (the exponential race behind torch.multinomial); uniforms and two logs cost a quarter of `exponential_`."""
    return torch.rand(rows, vocab, generator=generator).log_().neg_().log_()


def pad_prompts(prompts: List[List[int]]) -> torch.Tensor:
    """Left-pad encoded prompts (each starting with BOS) to one [B, Lp] tensor."""
    width = max(len(p) for p in prompts)
    return torch.tensor([[PAD] * (width - len(p)) + p for p in prompts], dtype=torch.long)


def _decode_loop(model: TinyGPT, prompt_ids: torch.Tensor, group: int, max_new: int, temps: Sequence[float],
                 generator: Optional[torch.Generator]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decode len(temps) blocks of B·group rows from one prompt pass; block k samples at temps[k] (0 = greedy).
    Returns [blocks·B·group, max_new] tensors, block after block, each b-major then sample.

    Gives the tokens of one `sample` call per block, made in that order: a sampling block draws, at every step its own
    call would have reached, the exponential race's q for each (row, vocabulary entry) of all its rows, finished or
    not. Inside, the R = blocks·group rows of a prompt sit together so they share its keys; a prompt whose rows have
    all ended is dropped once at least half of the prompts still computed have."""
    logits, cache, valid, lengths = model.prompt(prompt_ids)
    b, lp = prompt_ids.shape
    blocks, vocab = len(temps), logits.shape[1]
    r = blocks * group
    n = b * r
    width = max(max_new - 1, 1)               # continuation keys: tokens 0..max_new-2 are fed back
    h = model.cfg.n_head
    d = model.cfg.n_embd // h
    bufs = [(kp.transpose(-1, -2).contiguous(), vp.contiguous(), kp.new_empty(b, h, r, width, d),
             vp.new_empty(b, h, r, width, d)) for kp, vp in cache]
    bias = torch.zeros(b, 1, 1, 1, lp + width)
    bias[:, 0, 0, 0, :lp].masked_fill_(~valid, NEG_INF)
    pos = lengths.repeat_interleave(r)
    logits = logits.repeat_interleave(r, 0)
    sampling = [k for k, t in enumerate(temps) if t > 0]
    row_t = torch.tensor([t if t > 0 else 1.0 for t in temps]).repeat_interleave(group).repeat(b)[:, None]
    is_greedy = torch.tensor([t <= 0 for t in temps]).repeat_interleave(group).repeat(b)
    mixed = len(sampling) not in (0, blocks)
    tokens = torch.full((n, max_new), PAD, dtype=torch.long)
    logps = torch.zeros(n, max_new)
    mask = torch.zeros(n, max_new, dtype=torch.bool)
    rows = torch.arange(n)                    # internal index of each row still computed
    prompts = b                               # prompts still computed
    live = torch.ones(n, dtype=torch.bool)    # rows that have not ended
    block_on = [True] * blocks                # would block k's own call still be decoding?
    for j in range(max_new):
        if not bool(torch.isfinite(logits).all()):
            raise NonFinite("non-finite logits while sampling")
        logp_all = torch.log_softmax(logits / (row_t if prompts == b else row_t[rows]) if sampling else logits, -1)
        if not sampling:
            nxt = logp_all.argmax(-1)
        else:
            if blocks == 1:
                log_q = exponential_log(n, vocab, generator)
            else:
                log_q = torch.zeros(b, blocks, group, vocab)
                for k in sampling:
                    if block_on[k]:
                        log_q[:, k] = exponential_log(b * group, vocab, generator).view(b, group, vocab)
                log_q = log_q.view(n, vocab)
            nxt = (logp_all - (log_q if prompts == b else log_q[rows])).argmax(-1)
            if mixed:
                nxt = torch.where(is_greedy if prompts == b else is_greedy[rows], logp_all.argmax(-1), nxt)
        tokens[rows, j] = torch.where(live, nxt, PAD)
        logps[rows, j] = torch.where(live, logp_all.gather(1, nxt[:, None]).squeeze(1), 0.0)
        mask[rows, j] = live
        live = live & (nxt != EOS)
        if j == max_new - 1:
            break
        per_prompt = live.view(prompts, r)
        if blocks > 1:
            block_on = per_prompt.view(prompts, blocks, group).any(2).any(0).tolist()
        on = per_prompt.any(1)
        n_on = int(on.sum())
        if n_on == 0:
            break
        if 2 * n_on <= prompts:               # drop prompts whose rows have all ended
            keep = on.nonzero().squeeze(1)
            keep_rows = (keep[:, None] * r + torch.arange(r)).view(-1)
            rows, nxt, pos, live = rows[keep_rows], nxt[keep_rows], pos[keep_rows], live[keep_rows]
            bias = bias[keep]
            bufs = [(kp_t[keep], vp[keep], kb[keep], vb[keep]) for kp_t, vp, kb, vb in bufs]
            prompts = n_on
        x = model.embed(nxt[:, None], (pos + j)[:, None])
        step_bias = bias[..., :lp + j + 1]
        for block, (kp_t, vp, kb, vb) in zip(model.blocks, bufs, strict=True):
            x = cast(Block, block).grouped(x, prompts, kp_t, vp, step_bias, (kb, vb, j))
        logits = model.logits(x[:, 0])
    if blocks > 1:  # internal (prompt, block, sample) order -> (block, prompt, sample)
        tokens, logps, mask = (t.view(b, blocks, group, max_new).transpose(0, 1).reshape(n, max_new)
                               for t in (tokens, logps, mask))
    return tokens, logps, mask


def sample(model: TinyGPT, prompt_ids: torch.Tensor, group: int, max_new: int, temperature: float,
           generator: Optional[torch.Generator]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample `group` continuations per prompt. temperature 0 = greedy.
    Returns tokens [B*G, max_new] (PAD after EOS), behaviour log-probs [B*G, max_new] of the sampling distribution
    (logits / temperature; at temperature 0 the plain softmax), and the valid-token mask (tokens up to and including
    EOS)."""
    with torch.inference_mode():
        out = _decode_loop(model, prompt_ids, group, max_new, [temperature], generator)
    tokens, logps, mask = out
    return tokens.clone(), logps.clone(), mask.clone()  # ordinary tensors: training reads them under autograd


def sample_greedy_and_tempered(model: TinyGPT, prompt_ids: torch.Tensor, max_new: int, temperature: float,
                               generator: Optional[torch.Generator]) -> Tuple[torch.Tensor, torch.Tensor]:
    """One greedy and one sampled answer per prompt from a single prompt pass: the same tokens as
    `sample(..., 0.0, None)` followed by `sample(..., temperature, generator)`. Returns (greedy, sampled) tokens."""
    with torch.inference_mode():
        tokens, _, _ = _decode_loop(model, prompt_ids, 1, max_new, [0.0, temperature], generator)
    b = prompt_ids.shape[0]
    return tokens[:b].clone(), tokens[b:].clone()


def sequence_logprobs(model: TinyGPT, prompt_ids: torch.Tensor, group: int, tokens: torch.Tensor,
                      temperature: float = 1.0, mask: Optional[torch.Tensor] = None
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Log-probs [B*G, Lc] of `tokens` under `model` (with grad), and per-token entropy (without), in one prompt pass
    plus one continuation pass. Both are of the sampling distribution softmax(logits / temperature) (temperature 0,
    greedy, means 1), so they agree with `sample`'s behaviour log-probs when the weights are the same.
    With `mask` (the valid tokens, a prefix of each row) only the positions that predict a valid token are computed;
    the others read 0."""
    logits0, cache, valid, lengths = model.prompt(prompt_ids)
    first = (logits0.repeat_interleave(group, 0) if group > 1 else logits0)[:, None]
    n, lc = tokens.shape
    if lc > 1 and mask is not None:  # the log-softmax runs on the computed positions only, then scatters scalars
        need = mask[:, 1:]
        packed = model.continuation(tokens[:, :-1], cache, valid, lengths, group, need)
        logp0, ent0 = _logp_entropy(first[:, 0], tokens[:, 0], temperature)
        logp_p, ent_p = _logp_entropy(packed, tokens[:, 1:][need], temperature)
        logp = torch.cat([logp0[:, None], logp0.new_zeros(n, lc - 1).masked_scatter(need, logp_p)], 1)
        entropy = torch.cat([ent0[:, None], ent0.new_zeros(n, lc - 1).masked_scatter(need, ent_p)], 1)
        return logp * mask, entropy * mask
    if lc == 1:
        logits = first
    else:
        logits = torch.cat([first, model.continuation(tokens[:, :-1], cache, valid, lengths, group)], 1)
    logp, entropy = _logp_entropy(logits, tokens, temperature)
    if mask is not None:
        logp, entropy = logp * mask, entropy * mask
    return logp, entropy


def _logp_entropy(logits: torch.Tensor, tokens: torch.Tensor, temperature: float
                  ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of `tokens` and entropy under softmax(logits / temperature) (0 means 1), over the last dim. The
    entropy is a statistic no loss reads: computed without autograd, it records no graph and keeps no tensor for a
    backward that never comes."""
    if temperature > 0 and temperature != 1.0:
        logits = logits / temperature
    logp_all = torch.log_softmax(logits, -1)
    logp = logp_all.gather(-1, tokens[..., None]).squeeze(-1)
    with torch.no_grad():
        entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
