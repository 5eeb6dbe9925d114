"""Runs in the areal venv (not the harness's): AReaL 1.0.4's own `grpo_loss_fn` over the micro-batches of a batch,
weighted as `PPOActor.ppo_update` weights them (loss_weight_fn = loss_mask.count_nonzero(), each micro-batch's loss
times its weight over the batch's total), with the M2PO settings of AReaL's gsm8k_m2po.yaml.

usage: python areal_loss_reference.py IN.pt OUT.pt   (IN: a list of cases; OUT: loss and gradient per case)
"""

import sys

import torch
from areal.api.cli_args import RejectionSamplingConfig
from areal.trainer.ppo.actor import grpo_loss_fn


def areal_loss(case: dict) -> dict:
    logp = case["logp"].clone().requires_grad_(True)
    mask, ids = case["mask"], case["micro_batch"]
    total_weight = mask.count_nonzero()
    loss = torch.zeros(())
    for mb in torch.unique(ids):
        rows = ids == mb
        data = {"logprobs": case["behav_logp"][rows], "advantages": case["advantages"][rows],
                "loss_mask": mask[rows], "prox_logp": case["prox_logp"][rows]}
        mb_loss = grpo_loss_fn(logp[rows], torch.zeros_like(logp[rows]), data, eps_clip=case["eps_clip"],
                               eps_clip_higher=None, c_clip=None,
                               rejection_sampling=RejectionSamplingConfig(metric="ratio", upper=case["cap"]),
                               m2_threshold=case["m2_threshold"], prox_logp_method="recompute",
                               use_decoupled_loss=True)
        loss = loss + mb_loss * (mask[rows].count_nonzero() / total_weight)
    (grad,) = torch.autograd.grad(loss, logp)
    return {"loss": loss.detach(), "grad": grad}


if __name__ == "__main__":
    cases = torch.load(sys.argv[1], weights_only=True)
    torch.save([areal_loss(c) for c in cases], sys.argv[2])
