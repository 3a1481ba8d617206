"""PyTorch twins of the project's routed adapters, for the side-by-side benchmarks only (never a
project dependency). LoRA itself comes from PEFT. Both are written the efficient way (one product
for all experts), as the project computes them, so the comparison times the same arithmetic.
"""
import math

import torch
from torch import nn


class MoRLinear(nn.Module):
    """y = W x + s * sum_i g_i * omegaB_i ⊙ (B (omegaA_i ⊙ (A x))), g = softmax(W_g x)."""

    def __init__(self, base: nn.Linear, r=8, n=8, alpha=16):
        super().__init__()
        self.base = base
        d_in, d_out = base.in_features, base.out_features
        dt = base.weight.dtype
        self.scaling = alpha / r
        self.A = nn.Parameter(torch.randn(r, d_in, dtype=dt) / math.sqrt(d_in))
        self.B = nn.Parameter(torch.zeros(d_out, r, dtype=dt))
        self.omega_a = nn.Parameter(torch.ones(n, r, dtype=dt) + 0.01 * torch.randn(n, r, dtype=dt))
        self.omega_b = nn.Parameter(torch.ones(n, d_out, dtype=dt) + 0.01 * torch.randn(n, d_out, dtype=dt))
        self.router = nn.Parameter(0.02 * torch.randn(n, d_in, dtype=dt))

    def forward(self, x):
        y = self.base(x)
        h = x @ self.A.t()  # [..., r]
        g = torch.softmax(x @ self.router.t(), dim=-1)  # [..., N]
        z = (g.unsqueeze(-1) * self.omega_a * h.unsqueeze(-2))  # [..., N, r]
        bexp = self.omega_b.unsqueeze(-1) * self.B.unsqueeze(0)  # [N, out, r]
        delta = torch.einsum("...nr,nor->...o", z, bexp)
        return y + self.scaling * delta


class MoELoRALinear(nn.Module):
    """y = W x + s * sum_i g_i B_i A_i x (dense softmax router), experts stacked: one product each way."""

    def __init__(self, base: nn.Linear, r=8, n=8, alpha=16):
        super().__init__()
        self.base = base
        d_in, d_out = base.in_features, base.out_features
        dt = base.weight.dtype
        self.n, self.r = n, r
        self.scaling = alpha / r
        self.A = nn.Parameter(torch.randn(n * r, d_in, dtype=dt) / math.sqrt(d_in))
        self.B = nn.Parameter(torch.zeros(n * r, d_out, dtype=dt))
        self.router = nn.Parameter(0.02 * torch.randn(n, d_in, dtype=dt))

    def forward(self, x):
        y = self.base(x)
        g = torch.softmax(x @ self.router.t(), dim=-1)  # [..., N]
        h = (x @ self.A.t()).unflatten(-1, (self.n, self.r)) * g.unsqueeze(-1)  # [..., N, r]
        return y + self.scaling * (h.flatten(-2) @ self.B)


def attach(model, kind, targets, r, n, alpha):
    """Replace each target linear of every decoder layer's MLP/attention by its routed twin."""
    cls = {"mor": MoRLinear, "moelora": MoELoRALinear}[kind]
    for layer in model.model.layers:
        for name in targets:
            parent = layer.mlp if name in ("gate_proj", "up_proj", "down_proj") else layer.self_attn
            setattr(parent, name, cls(getattr(parent, name), r=r, n=n, alpha=alpha))
