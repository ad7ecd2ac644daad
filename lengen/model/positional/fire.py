"""FIRE (Li et al., 2023): a learned function of the query-normalised distance as attention bias.

``b(i, j) = f(psi(i - j) / psi(max(L, i)))`` with ``psi(x) = log(|c * x| + 1)``, ``f`` an MLP
``1 -> hidden -> ReLU -> heads``, ``c`` learned (init ``init_c``) and the threshold
``L = |m| * init_L`` with a learned multiplier ``m`` (init 1), as in the public code
(mcleish7/arithmetic ``FIRE``: ``eps = 1e-6`` in the denominator, default ``nn.Linear`` init).
Dividing by ``psi(i)`` maps every query's distances into ``[0, 1]`` (progressive interpolation), so
longer contexts reuse the inputs seen in training; ``L`` keeps short contexts from being stretched.
Causal use only: keys after the query get the value of ``|i - j|`` and are masked by the model.

Long contexts. For ``i <= L`` the bias depends on ``i - j`` alone, but beyond ``L`` it depends on
``i`` itself, and ``distance_bias`` (a function of the distance only, chosen per class before the
positions are known) cannot be offered. The blocked path instead makes each query block cheap:
``f`` is piecewise linear in its scalar input (its ReLU kinks at ``x = -b1_k / w1_k``), so it is
evaluated as ``slope[h, s] * x + offset[h, s]`` on the segment ``s`` of ``x`` (one ``bucketize``
and two gathers per entry), never materialising the ``[.., hidden]`` activations (32 floats per
query-key pair). The segment tables are differentiable functions of the MLP's parameters and
equal the MLP everywhere (the kinks are where it is continuous), so training uses the same path.
Measured at 16,384 tokens (``scripts/bench_memory.py``, AMD EPYC, 1 thread): peak eval memory
1.1-1.2x nope's, one forward 3.5-5x nope's time (the bias is recomputed for every query block and
layer, tens of ns per query-key pair, mostly ``bucketize``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lengen.model.positional.base import PositionalEncoding, register

EPS = 1e-6  # the reference's guard in the normaliser


class FireFunction(nn.Module):
    """One FIRE bias function (one per layer, or one shared): ``c``, ``L``'s multiplier and ``f``.

    The MLP is held as plain parameters (not ``nn.Linear``) so that the model's own weight init,
    which rescales every ``nn.Linear``, leaves FIRE's default-``nn.Linear`` init alone.
    """

    def __init__(self, n_heads: int, hidden: int, init_c: float, init_L: float) -> None:
        super().__init__()
        self.init_L = float(init_L)
        self.c = nn.Parameter(torch.tensor(float(init_c)))
        self.multiplier = nn.Parameter(torch.tensor(1.0))
        bound = 1.0 / math.sqrt(hidden)  # nn.Linear's init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        self.w1 = nn.Parameter(torch.empty(hidden).uniform_(-1.0, 1.0))
        self.b1 = nn.Parameter(torch.empty(hidden).uniform_(-1.0, 1.0))
        self.w2 = nn.Parameter(torch.empty(n_heads, hidden).uniform_(-bound, bound))
        self.b2 = nn.Parameter(torch.empty(n_heads).uniform_(-bound, bound))

    def inputs(self, q_pos: torch.Tensor, k_pos: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``[B|1, Lq, Lk]``: ``psi(|i - j|) / (psi(max(L, i)) + eps)``."""
        c = self.c.to(dtype)
        q = q_pos.to(dtype)
        distance = (q[:, :, None] - k_pos.to(dtype)[:, None, :]).abs()
        threshold = (self.multiplier.to(dtype) * self.init_L).abs()
        normaliser = torch.log1p((c * torch.maximum(q, threshold)).abs())[:, :, None]
        return torch.log1p((c * distance).abs()) / (normaliser + EPS)

    def segments(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(kinks [K], slope [H, K+1], offset [H, K+1])``: ``f(x) = slope[:, s] x + offset[:, s]``
        on segment ``s = bucketize(x, kinks)``, i.e. ``kinks[s-1] < x <= kinks[s]``."""
        w1, b1, w2, b2 = (p.to(dtype) for p in (self.w1, self.b1, self.w2, self.b2))
        with torch.no_grad():
            flat = w1 == 0  # a constant unit: on everywhere iff b1 > 0, its kink put at +inf
            kink = torch.where(flat, torch.full_like(w1, math.inf), -b1 / torch.where(flat, 1.0, w1))
            kinks, order = kink.sort()
            rank = torch.empty_like(order)
            rank[order] = torch.arange(order.numel(), device=order.device)
            seg = torch.arange(order.numel() + 1, device=order.device)[:, None]  # [S, 1]
            # unit k is on in segment s: rising (w1 > 0) past its kink, falling (w1 < 0) before it
            on = torch.where(w1 > 0, rank < seg, torch.where(w1 < 0, rank >= seg, b1 > 0)).to(dtype)
        # elementwise products and sums, not matmuls: autocast would round those to bf16
        slope = (w2[:, None, :] * (on * w1)).sum(-1)
        offset = (w2[:, None, :] * (on * b1)).sum(-1) + b2[:, None]
        return kinks, slope, offset

    def forward(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
        """``[B|1, H, Lq, Lk]`` FIRE bias of queries at ``q_pos`` against keys at ``k_pos``."""
        dtype = torch.promote_types(self.w2.dtype, torch.float32)
        kinks, slope, offset = self.segments(dtype)
        x = self.inputs(q_pos, k_pos, dtype)
        seg = torch.bucketize(x.detach(), kinks).flatten()
        # one index_select per [H, S] table: several times faster on CPU than indexing it with the
        # [B, Lq, Lk] grid of segments; moving H next to B is free for B = 1
        offsets, slopes = (t.index_select(1, seg).unflatten(1, x.shape) for t in (offset, slope))
        return torch.addcmul(offsets, slopes, x).movedim(0, 1)


@register
class Fire(PositionalEncoding):
    name = "fire"

    def __init__(
        self,
        *,
        d_model: int,
        n_heads: int,
        n_layers: int,
        hidden: int = 32,
        init_c: float = 0.1,
        init_L: float = 512.0,
        per_layer: bool = False,
        **unknown,
    ) -> None:
        super().__init__(d_model=d_model, n_heads=n_heads, n_layers=n_layers)
        if unknown:
            raise ValueError(
                f"pe=fire got unknown option(s) {', '.join(sorted(unknown))}; "
                "valid: hidden, init_c, init_L, per_layer"
            )
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"pe.hidden={hidden!r} must be a positive integer")
        for key, value in (("init_c", init_c), ("init_L", init_L)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"pe.{key}={value!r} must be a number > 0")
        if not isinstance(per_layer, bool):
            raise ValueError(f"pe.per_layer={per_layer!r} must be true or false")
        self.per_layer = per_layer
        self.shared_bias = not per_layer
        self.functions = nn.ModuleList(
            FireFunction(n_heads, hidden, init_c, init_L) for _ in range(n_layers if per_layer else 1)
        )

    def bias(self, q_pos: torch.Tensor, k_pos: torch.Tensor, layer: int = 0) -> torch.Tensor:
        return self.functions[layer if self.per_layer else 0](q_pos, k_pos)
