"""The tiny transformer's fast paths against plain references: cached decoding, shared-prompt eval, sampling
temperature in every ratio, and the optimiser."""

from __future__ import annotations

import copy
from typing import Optional

import pytest
import torch

from harness.engines.embedded import model as M
from harness.engines.embedded.losses import LossInputs, get_loss
from harness.engines.embedded.rollout import generate
from harness.engines.embedded.task import ProblemSet
from harness.engines.embedded.train import Adam, Trainer
from harness.spec.compose import compose_trail


def tiny_model(seed: int = 0, eos_logit: float = 0.0) -> M.TinyGPT:
    """A random 2-layer model whose EOS logit is `eos_logit` plus a little at every step (the other logits are small
    and random), so sampled rows end at different steps."""
    torch.manual_seed(seed)
    model = M.TinyGPT(M.ModelConfig(n_layer=2, n_embd=32, n_head=2, block_size=96))
    with torch.no_grad():
        for p in model.blocks.parameters():
            p.mul_(20.0)                       # attention and MLP far from the init's near-identity
        model.head.weight.mul_(10.0)
        model.ln_f.weight[0], model.ln_f.bias[0] = 0.0, 1.0
        model.head.weight[M.EOS, 0] = eos_logit
    return model


def prompts(n: int = 6, seed: int = 0) -> torch.Tensor:
    problems = ProblemSet("0", "train/1", 2, 10)
    return M.pad_prompts([[M.BOS] + M.encode(problems[seed * n + i].question) for i in range(n)])


def reference_sample(model: M.TinyGPT, ids: torch.Tensor, group: int, max_new: int, temperature: float,
                     generator: Optional[torch.Generator]):
    """No cache, no dropped rows: every step reruns the whole prefix; the exponential race drawn per (row, vocabulary
    entry) from the generator's uniforms as q = −log u, the token argmax p / q, on every row."""
    n = ids.shape[0] * group
    tokens = torch.full((n, max_new), M.PAD, dtype=torch.long)
    logps = torch.zeros(n, max_new)
    mask = torch.zeros(n, max_new, dtype=torch.bool)
    alive = torch.ones(n, dtype=torch.bool)
    with torch.no_grad():
        for j in range(max_new):
            logits0, cache, valid, lengths = model.prompt(ids)
            logits = logits0.repeat_interleave(group, 0)
            if j:
                cont = model.continuation(tokens[:, :j], cache, valid, lengths, group)
                logits = cont[:, -1]
            logp_all = torch.log_softmax(logits / (temperature if temperature > 0 else 1.0), -1)
            if temperature > 0:
                q = -torch.rand(n, logp_all.shape[1], generator=generator).log()
                nxt = (logp_all.exp() / q).argmax(1)
            else:
                nxt = logp_all.argmax(-1)
            nxt = torch.where(alive, nxt, M.PAD)
            tokens[:, j] = nxt
            logps[:, j] = torch.where(alive, logp_all.gather(1, nxt[:, None]).squeeze(1), 0.0)
            mask[:, j] = alive
            alive = alive & (nxt != M.EOS)
            if not alive.any():
                break
    return tokens, logps, mask


@pytest.mark.parametrize("temperature", [1.0, 0.7, 0.0])
def test_cached_decoding_equals_rerunning_the_prefix(temperature) -> None:
    model, ids = tiny_model(eos_logit=4.0), prompts()
    got = M.sample(model, ids, 4, 8, temperature, torch.Generator().manual_seed(3))
    want = reference_sample(model, ids, 4, 8, temperature, torch.Generator().manual_seed(3))
    lengths = got[2].sum(1)
    if temperature > 0:  # rows end at different steps, and half the prompts end early (finished prompts are dropped)
        assert lengths.min() < lengths.max() and int((lengths < 6).view(6, 4).all(1).sum()) >= 3
    assert torch.equal(got[0], want[0]) and torch.equal(got[2], want[2])
    assert torch.allclose(got[1], want[1], atol=1e-5)


def test_exponential_race_draws_from_the_softmax() -> None:
    """argmax(log p − log q), q ~ Exp(1), is a draw from p: frequencies over 40,000 draws within 4.5 standard errors."""
    logp = torch.log_softmax(torch.tensor([[2.0, 1.0, 0.0, -1.0, -3.0]]), -1)
    draws = (logp - M.exponential_log(40_000, 5, torch.Generator().manual_seed(0))).argmax(1)
    freq = torch.bincount(draws, minlength=5).double() / 40_000
    p = logp.exp()[0].double()
    assert ((freq - p).abs() <= 4.5 * (p * (1 - p) / 40_000).sqrt()).all(), (freq, p)


def test_eval_shares_the_prompt_pass_and_draws_what_separate_calls_draw() -> None:
    model, ids = tiny_model(eos_logit=3.0), prompts(8)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    greedy, sampled = M.sample_greedy_and_tempered(model, ids, 8, 0.8, g1)
    assert torch.equal(greedy, M.sample(model, ids, 1, 8, 0.0, None)[0])
    assert torch.equal(sampled, M.sample(model, ids, 1, 8, 0.8, g2)[0])
    assert torch.equal(g1.get_state(), g2.get_state())


def _algo(name: str, variant: str):
    return compose_trail(["tracking=none", f"algo={name}", f"algo.variant={variant}"]).algo


@pytest.mark.parametrize("name,variant", [("grpo", "clip"), ("grpo", "decoupled"), ("m2po", "paper"),
                                          ("m2po", "areal")])
def test_ratios_are_one_at_a_sampling_temperature_other_than_one(name, variant) -> None:
    model, ids, group = tiny_model(eos_logit=2.0), prompts(), 4
    tokens, behav, mask = M.sample(model, ids, group, 8, 0.7, torch.Generator().manual_seed(0))
    logp, _ = M.sequence_logprobs(model, ids, group, tokens, temperature=0.7)
    log_ratio = (logp.detach() - behav)[mask]
    assert log_ratio.abs().max() < 1e-5
    # the same log-probs at temperature 1 are another distribution: every ratio would be off
    plain, _ = M.sequence_logprobs(model, ids, group, tokens)
    assert (plain.detach() - behav)[mask].abs().max() > 0.1
    adv = torch.randn(tokens.shape[0], generator=torch.Generator().manual_seed(1))
    inputs = LossInputs(logp=logp, behav_logp=behav, prox_logp=logp.detach(), advantages=adv, mask=mask)
    _, stats = get_loss(name, variant)(inputs, _algo(name, variant))
    assert stats["clip_frac"] == 0.0 and stats["masked_frac"] == 0.0
    assert stats["is_ratio_mean"] == pytest.approx(1.0, abs=1e-5)


def test_trainer_update_at_temperature_07_is_on_policy(tmp_path) -> None:
    cfg = compose_trail(["tracking=none", "algo=m2po", "engine.temperature=0.7", "engine.n_layer=2",
                         "engine.n_embd=32", "engine.n_head=2", "engine.group_size=4", "engine.ppo_n_minibatches=2"])
    problems = ProblemSet("0", "train/1", 2, 10)
    policy = tiny_model(eos_logit=2.0)
    batch = generate(policy, problems, list(range(4)), 4, 8, 0.7, torch.Generator().manual_seed(0), 0)
    stats = Trainer(policy, cfg, problems).update(batch)
    assert stats["is_ratio_mean"] == pytest.approx(1.0, abs=1e-5)  # first minibatch on-policy, second one step off
    assert stats["masked_frac"] == 0.0


def test_training_forward_matches_a_full_sequence_pass() -> None:
    """The shared-prompt continuation pass equals running each prompt + answer as one sequence."""
    model, ids, group = tiny_model(eos_logit=2.0), prompts(4), 3
    tokens, _, mask = M.sample(model, ids, group, 8, 1.0, torch.Generator().manual_seed(2))
    logp, _ = M.sequence_logprobs(model, ids, group, tokens)
    for row in range(tokens.shape[0]):
        prompt = ids[row // group][ids[row // group] != M.PAD]
        n = int(mask[row].sum())
        full = torch.cat([prompt, tokens[row, :n]])[None]
        lp, _ = M.sequence_logprobs(model, full[:, :len(prompt)], 1, full[:, len(prompt):])
        assert torch.allclose(lp[0], logp[row, :n], atol=1e-5)


def test_adam_takes_torch_adams_steps_bit_for_bit_and_reads_its_state() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 3))
    twin = copy.deepcopy(net)
    ref, ours = torch.optim.Adam(net.parameters(), lr=1e-2), Adam(list(twin.parameters()), lr=1e-2)
    for _ in range(20):
        x = torch.randn(32, 8)
        for model, opt in ((net, ref), (twin, ours)):
            opt.zero_grad(set_to_none=True)
            model(x).square().mean().backward()
            opt.step()
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), twin.parameters(), strict=True))
    resumed = Adam(list(copy.deepcopy(twin).parameters()), lr=1e-2)
    resumed.load_state_dict(ref.state_dict())
    assert resumed.step_count == 20
    assert all(torch.equal(a, b) for a, b in zip(resumed.exp_avg_sq, ours.exp_avg_sq, strict=True))
    again = Adam(list(copy.deepcopy(twin).parameters()), lr=1e-2)
    again.load_state_dict(ours.state_dict())
    assert again.step_count == 20 and all(torch.equal(a, b) for a, b in zip(again.exp_avg, ours.exp_avg, strict=True))
    # and the other way round: a checkpoint of ours resumes in torch's Adam, which then takes the same steps
    library = torch.optim.Adam(copy.deepcopy(twin).parameters(), lr=1e-2)
    library.load_state_dict(ours.state_dict())
    for opt, params in ((library, library.param_groups[0]["params"]), (ours, ours.params)):
        torch.manual_seed(1)
        for p in params:
            p.grad = torch.randn_like(p)
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(library.param_groups[0]["params"], ours.params, strict=True))
