"""Rotary position embedding (Su et al., 2021), with the paper's interleaved pairs (2i, 2i+1).

Only the first ``rot`` dims of each head are rotated (``fraction``; Kazemnejad et al. rotated
0.25 of them); the rest pass through, carrying position-free content. Angles are computed from
explicit position ids in at least fp32 (bf16 angles are far too coarse at long range) and the
result is cast back to the input dtype.

Interleaved pairs make the rotation one complex multiplication (one read and one write of q and
k, forward and backward) instead of the half-split (GPT-NeoX) slices, products and concatenation;
the two conventions differ only by a fixed permutation of head dims, which learned projections
absorb, so a model trained from scratch is the same function class either way.

Evaluation-time methods (``lengen.extend``: PI, NTK, YaRN, ...) replace the inverse frequencies
with :meth:`Rotary.set_frequencies`; without one the angles are computed exactly as in training.
"""

from __future__ import annotations

import torch

from lengen.model.positional.base import PositionalEncoding, register


@register
class Rotary(PositionalEncoding):
    name = "rope"
    relative = True

    def __init__(
        self,
        *,
        d_model: int,
        n_heads: int,
        n_layers: int,
        base: float = 10000.0,
        fraction: float = 1.0,
        **unknown,
    ) -> None:
        super().__init__(d_model=d_model, n_heads=n_heads, n_layers=n_layers)
        if unknown:
            raise ValueError(
                f"pe=rope got unknown option(s) {', '.join(sorted(unknown))}; valid: base, fraction"
            )
        if isinstance(base, bool) or not isinstance(base, (int, float)) or not base > 1:
            raise ValueError(f"pe.base={base!r} must be a number > 1")
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise ValueError(f"pe.fraction={fraction!r} must be in (0, 1]")
        head_dim = d_model // n_heads
        rot = int(head_dim * fraction) // 2 * 2
        if rot == 0:
            raise ValueError(
                f"pe.fraction={fraction} rotates 0 of the {head_dim} dims per head; "
                f"use a fraction >= {2 / head_dim:.3g} (at least 2 dims)"
            )
        self.base, self.fraction, self.rot = float(base), float(fraction), rot
        self._memo: tuple | None = None
        self._frequencies = None

    def set_frequencies(self, fn) -> None:
        """Replace the inverse frequencies (``None`` restores the trained ones).

        ``fn(length)`` returns the ``rot // 2`` inverse frequencies; ``length`` is one more than the
        largest position id of the forward when ``fn.dynamic`` is true (dynamic NTK), else None.
        """
        self._frequencies, self._memo = fn, None

    def _rotations(self, pos: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``[B|1, 1, L, rot/2]`` unit complex numbers; memoized for the same ``pos`` (every layer)."""
        # Inference tensors track no version counter: on CPU compare a snapshot of their values
        # instead (O(L), far cheaper than the O(L * rot) angles it saves); on an accelerator that
        # comparison would be a host sync per call, so recompute there.
        if pos.is_inference() and pos.device.type != "cpu":
            return self._compute_rotations(pos, dtype)
        version = pos.clone() if pos.is_inference() else pos._version
        key = (pos, version, dtype, torch.is_inference_mode_enabled())
        memo = self._memo
        if memo is not None and memo[0] is pos and memo[2:4] == key[2:] and self._same_version(memo[1], version):
            return memo[4]
        rotations = self._compute_rotations(pos, dtype)
        self._memo = (*key, rotations)
        return rotations

    def _compute_rotations(self, pos: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        fn = self._frequencies
        if fn is None:
            exponent = torch.arange(0, self.rot, 2, device=pos.device, dtype=dtype) / self.rot
            inv_freq = self.base**-exponent
        else:
            length = int(pos.max()) + 1 if getattr(fn, "dynamic", False) else None
            inv_freq = torch.as_tensor(fn(length)).to(device=pos.device, dtype=dtype)
        angles = pos[:, None, :, None].to(dtype) * inv_freq
        return torch.polar(torch.ones_like(angles), angles)

    @staticmethod
    def _same_version(old, new) -> bool:
        if isinstance(old, torch.Tensor) or isinstance(new, torch.Tensor):
            return (isinstance(old, torch.Tensor) and isinstance(new, torch.Tensor)
                    and old.shape == new.shape and bool(torch.equal(old, new)))
        return old == new

    def rotate(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return multiply_pairs(x, self._rotations(pos, torch.promote_types(x.dtype, torch.float32)), self.rot)


def multiply_pairs(x: torch.Tensor, factors: torch.Tensor, rot: int) -> torch.Tensor:
    """Multiply the first ``rot`` dims of ``x``, read as interleaved complex pairs, by ``factors``.

    ``factors`` (complex, broadcasting against ``[..., rot/2]``) sets the compute precision; the
    result is cast back to ``x.dtype`` and the other dims pass through. Shared by rotary variants
    whose factors are not unit rotations (xPos scales them).
    """
    cdtype = factors.real.dtype
    pairs = x[..., :rot].to(cdtype).unflatten(-1, (-1, 2))
    if pairs.storage_offset() % 2 or any(s % 2 for s in pairs.stride()[:-1]):
        pairs = pairs.contiguous()  # a complex view needs even strides (odd head dims)
    rotated = torch.view_as_real(torch.view_as_complex(pairs) * factors).flatten(-2).to(x.dtype)
    if rot == x.shape[-1]:
        return rotated
    return torch.cat((rotated, x[..., rot:]), dim=-1)
