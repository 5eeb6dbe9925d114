"""Loaded by Python at start-up in every AReaL process of a CPU run (the AReaL engine puts this folder on PYTHONPATH
only when engine.device=cpu). Runs in AReaL's Python, not the harness's.

Why: vLLM 0.19.1's CPU backend prepacks each unquantized linear layer after loading and then replaces its weight by an
empty tensor (vllm/model_executor/layers/linear.py, UnquantizedLinearMethod.process_weights_after_loading →
vllm/model_executor/layers/utils.py, dispatch_cpu_unquantized_gemm(layer, remove_weight=True)). AReaL updates the
server's weights in place after every training step (load_weights), which then fails with "Attempted to load weight
(torch.Size([128, 128])) into parameter (torch.Size([0]))". This keeps every such layer on torch's own linear, which
reads layer.weight at each call, so an in-place update is what the next generation uses.
The removing paths are vLLM's oneDNN matmul (its AVX-512 kernels, vllm/_C_AVX512 and vllm/_C), zentorch and its SGL
kernels; on an AVX2-only CPU vLLM's own fallback is already torch's linear, and this changes nothing there.

The patch is applied when vLLM's module is first imported (a meta-path finder wraps its loader), so processes that
never import vLLM pay nothing.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys

_TARGET = "vllm.model_executor.layers.utils"


def _keep_torch_linear(layer, remove_weight):  # the signature of vLLM's dispatch_cpu_unquantized_gemm
    import torch

    layer.cpu_linear = lambda x, weight, bias: torch.nn.functional.linear(x, weight, bias)


class _PatchVllmCpuGemm(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != _TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            module.dispatch_cpu_unquantized_gemm = _keep_torch_linear

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _PatchVllmCpuGemm())
