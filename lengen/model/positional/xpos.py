"""xPos (Sun et al., 2022): rotary with an exponential decay of query-key products with distance.

RoPE's rotation (``Rotary``: interleaved pairs, ``base``, ``fraction``), and per rotated pair
``p`` of ``d`` rotated dims the query at position ``t`` is scaled by ``zeta_p^(t / scale_base)``
and the key by ``zeta_p^(-t / scale_base)``, ``zeta_p = (2p + 0.4 d) / (1.4 d) < 1``. A pair's
contribution to ``q_i . k_j`` is then RoPE's times ``zeta_p^((i - j) / scale_base)``: it depends on
``i - j`` only and decays with distance. Reference: x-transformers ``RotaryEmbedding(use_xpos=True)``.

Positions are used as they are: the reference centres ``t`` at ``T/2`` of each forward to keep
the scales near 1, but the centre cancels in every product, and with a KV cache the keys are
scaled in an earlier forward than the queries that read them, so only a fixed centre keeps cached
and fresh tokens consistent; 0 keeps training (short) positions at scales near 1. The scales are
computed in float64 (exponent and ``exp``) and applied in at least float32, like the angles. Far
positions still need range: the key scale of the first pair reaches ``3.5^(t / scale_base)``
(``1e17`` at 16k positions, fine in float32 and bfloat16), so :meth:`max_positions` stops where it
would come within ``e^4`` of float32's range (34k positions for ``scale_base = 512``; it grows
linearly with ``scale_base``). float16 (``16-mixed``) has far less range: keys overflow past
about 4k positions, so use bf16 or fp32 with xpos.
"""

from __future__ import annotations

import math

import torch

from lengen.model.positional.base import PositionalEncoding, register
from lengen.model.positional.rope import Rotary, multiply_pairs

#: largest |log scale| allowed: float32's largest finite value is e^88.7 (smallest normal e^-87.3)
LOG_SCALE_LIMIT = 84.0
#: ``1 / zeta_0`` (1.4 / 0.4): the first pair has the smallest zeta, hence the most extreme scales
FIRST_PAIR_GROWTH = 3.5


@register
class XPos(PositionalEncoding):
    name = "xpos"
    relative = True

    def __init__(
        self,
        *,
        d_model: int,
        n_heads: int,
        n_layers: int,
        base: float = 10000.0,
        fraction: float = 1.0,
        scale_base: float = 512.0,
        **unknown,
    ) -> None:
        super().__init__(d_model=d_model, n_heads=n_heads, n_layers=n_layers)
        if unknown:
            raise ValueError(
                f"pe=xpos got unknown option(s) {', '.join(sorted(unknown))}; valid: base, fraction, scale_base"
            )
        if isinstance(scale_base, bool) or not isinstance(scale_base, (int, float)) or not scale_base > 0:
            raise ValueError(f"pe.scale_base={scale_base!r} must be a number > 0")
        # a part, not a base class: evaluation-time methods that assume plain RoPE (rescaled
        # frequencies, remapped positions) then refuse xpos instead of silently ignoring the decay
        self.rope = Rotary(d_model=d_model, n_heads=n_heads, n_layers=n_layers, base=base, fraction=fraction)
        self.base, self.fraction, self.rot = self.rope.base, self.rope.fraction, self.rope.rot
        self.scale_base = float(scale_base)
        self._memo: tuple[torch.Tensor, torch.Tensor] | None = None

    def max_positions(self) -> int:
        return int(LOG_SCALE_LIMIT * self.scale_base / math.log(FIRST_PAIR_GROWTH))

    def log_zeta(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """``[rot/2]``: ``log zeta_p``, ``zeta_p = (2p + 0.4 d) / (1.4 d)`` with ``d`` the rotated dims."""
        d = self.rot
        return ((torch.arange(0, d, 2, device=device, dtype=dtype) + 0.4 * d) / (1.4 * d)).log()

    def factors(self, pos: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``[2, B|1, 1, L, rot/2]`` complex: rotation times the query scale, then times the key scale."""
        rotations = self.rope._rotations(pos, dtype)  # memoized by RoPE for the same positions
        memo = self._memo
        if memo is not None and memo[0] is rotations:  # same positions, dtype and mode: every layer
            return memo[1]
        wide = torch.float32 if pos.device.type == "mps" else torch.float64  # mps has no float64
        log_scale = pos[:, None, :, None].to(wide) * (self.log_zeta(pos.device, wide) / self.scale_base)
        real = rotations.real.dtype
        factors = torch.stack((rotations * log_scale.exp().to(real), rotations * (-log_scale).exp().to(real)))
        self._memo = (rotations, factors)
        return factors

    def rotate(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Queries ``x[0]`` and keys ``x[1]`` of ``[2, B, H, L, Dh]``: both rotated, scaled apart."""
        if x.dim() != 5 or x.shape[0] != 2:
            raise ValueError(
                f"pe=xpos scales queries and keys apart, so rotate needs them stacked as [2, B, H, L, Dh]; "
                f"got shape {list(x.shape)}"
            )
        return multiply_pairs(x, self.factors(pos, torch.promote_types(x.dtype, torch.float32)), self.rot)
