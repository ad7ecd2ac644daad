"""Block-sparse attention on CUDA (PyTorch's FlexAttention) for packed rows and bias PEs.

On a GPU the dense paths cost what a fused kernel avoids: a packed row's mask is ``[B, 1, L, L]``
and a bias PE's ``bias + mask`` is built block by block as ``[B, H, q, L]``. FlexAttention instead
takes a *block mask* (causal, and within one example of a packed row: whole blocks off the
diagonal are skipped) and the PE bias as a *score modification* read from the PE's
``[heads, distances]`` table (:meth:`~lengen.model.positional.base.PositionalEncoding.distance_bias`:
T5, ALiBi, KERPLE, ...) or, for a bias that also depends on the query position (FIRE), from a
``[heads, P, P]`` table over the positions in use (packed rows restart positions at 0, so ``P`` is
the longest example, not the row), so no ``[heads, L, L]`` tensor is ever materialized.

:func:`applies` says when this path computes exactly what the dense one does: CUDA, a full forward
(no KV cache, no evaluation-time override, no attention recorder), no attention dropout (FlexAttention
has none: with ``model.dropout > 0`` training keeps SDPA), and either a packed mask without bias or
a bias of positions only (not CoPE's contextual one) with a table as above. Everywhere else -- the
CPU above all -- nothing changes.
:func:`attend` runs on any device (the tests compare it with the dense path on the CPU, uncompiled).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import torch

#: per-forward plans, keyed by the forward's AttentionBias (built once, used by every layer)
_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_COMPILED: dict[str, Any] = {}
#: largest ``[heads, P, P]`` table of a bias over position pairs (P = the positions' span; 64 MiB fp32)
PAIR_TABLE_ELEMENTS = 1 << 24


def applies(q: torch.Tensor, bias: Any, mask: torch.Tensor | None, dropout_p: float, past: int,
            override: Any, recorder: Any) -> bool:
    """Whether :func:`attend` replaces SDPA for this call (see the module docstring)."""
    return q.is_cuda and eligible(q, bias, mask, dropout_p, past, override, recorder)


def eligible(q: torch.Tensor, bias: Any, mask: torch.Tensor | None, dropout_p: float, past: int, override: Any,
             recorder: Any) -> bool:
    """:func:`applies` on any device: :func:`attend` computes exactly what SDPA would."""
    if dropout_p or past or override is not None or recorder is not None:
        return False
    if bias is None:
        return mask is not None
    if bias.pe.has_contextual_bias:  # logits from queries and keys (CoPE): not a score_mod of positions
        return False
    return plan_for(q, q, bias, None).table is not None


@dataclass
class Plan:
    """What every layer of one forward shares: the block mask and how the bias table is indexed.

    ``table`` is ``"distance"`` (the PE's ``[H, D]`` table of ``q_pos - k_pos``, offset ``lo``),
    ``"pairs"`` (``pe.bias`` over every pair of the positions in use, ``[H, P, P]``, offset ``lo``;
    for a PE whose bias also depends on the query position, e.g. FIRE, when ``P`` is small) or None
    (the dense path stays).
    """

    block_mask: Any = None
    table: str | None = None
    q_pos: torch.Tensor | None = None  # [B, Lq]
    k_pos: torch.Tensor | None = None  # [B, Lk]
    lo: int = 0
    span: int = 0


def _block_mask(mask_mod, b: int, lq: int, lk: int, device: torch.device):
    """Blocks of 128 x 128 that are empty, partial or full. On CUDA the mask is built compiled,
    block by block (uncompiled it would first evaluate ``mask_mod`` at all ``B x L x L`` pairs)."""
    from torch.nn.attention.flex_attention import create_block_mask

    return create_block_mask(mask_mod, b, None, lq, lk, device=device, _compile=device.type == "cuda")


def _bias_plan(bias: Any, b: int, lq: int, lk: int, device: torch.device) -> Plan:
    q_pos, k_pos = bias.q_pos.expand(b, -1), bias.k_pos.expand(b, -1)
    q_lo, q_hi, k_lo, k_hi = torch.stack([q_pos.min(), q_pos.max(), k_pos.min(), k_pos.max()]).tolist()
    if bias.pe.has_distance_bias:
        plan = Plan(table="distance", lo=int(q_lo - k_hi), span=int(q_hi - k_lo) - int(q_lo - k_hi) + 1)
    else:
        lo, hi = int(min(q_lo, k_lo)), int(max(q_hi, k_hi))
        if bias.pe.n_heads * (hi - lo + 1) ** 2 > PAIR_TABLE_ELEMENTS:
            return Plan()
        plan = Plan(table="pairs", lo=lo, span=hi - lo + 1)
    segments = bias.segments

    if segments is None:
        def mask_mod(bi, h, qi, ki):
            return ki <= qi
    else:
        def mask_mod(bi, h, qi, ki):
            return (ki <= qi) & (segments[bi, qi] == segments[bi, ki])

    plan.block_mask, plan.q_pos, plan.k_pos = _block_mask(mask_mod, b, lq, lk, device), q_pos, k_pos
    return plan


def _mask_plan(mask: torch.Tensor, b: int, lq: int, lk: int, device: torch.device) -> Plan:
    def mask_mod(bi, h, qi, ki):  # the packed rows' boolean [B, 1, L, L] mask (causal, same example)
        return mask[bi, 0, qi, ki]

    return Plan(_block_mask(mask_mod, b, lq, lk, device))


def plan_for(q: torch.Tensor, k: torch.Tensor, bias: Any, mask: torch.Tensor | None) -> Plan:
    """The forward's plan: built once per AttentionBias (a packed mask alone: per call)."""
    b, lq, lk = q.shape[0], q.shape[2], k.shape[2]
    if bias is None:
        return _mask_plan(mask, b, lq, lk, q.device)
    plan = _PLANS.get(bias)
    if plan is None:
        plan = _bias_plan(bias, b, lq, lk, q.device)
        _PLANS[bias] = plan
    return plan


def _flex(device: torch.device):
    """FlexAttention, compiled on CUDA (uncompiled it falls back to materializing every score)."""
    from torch.nn.attention.flex_attention import flex_attention

    if device.type != "cuda":
        return flex_attention
    if "cuda" not in _COMPILED:
        _COMPILED["cuda"] = torch.compile(flex_attention)
    return _COMPILED["cuda"]


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: Any, mask: torch.Tensor | None,
           layer: int, scale: float | None) -> torch.Tensor:
    """``softmax(q·kᵀ·scale + bias + mask)·v`` as ``[B, H, Lq, Dh]``, block-sparse.

    ``bias`` is the forward's :class:`~lengen.model.attention.AttentionBias` (a PE with a distance
    table) or None with ``mask`` the packed rows' boolean mask.
    """
    plan = plan_for(q, k, bias, mask)
    score_mod = None
    if bias is not None:
        q_pos, k_pos, lo = plan.q_pos, plan.k_pos, plan.lo
        positions = torch.arange(lo, lo + plan.span, device=q.device)
        if plan.table == "distance":
            table = bias.pe.distance_bias(positions, layer).float()  # [H, D]; scores are fp32 in the kernel

            def score_mod(score, bi, h, qi, ki):
                return score + table[h, q_pos[bi, qi] - k_pos[bi, ki] - lo]
        else:
            pairs = bias.pe.bias(positions[None], positions[None], layer)[0].float()  # [H, P, P]

            def score_mod(score, bi, h, qi, ki):
                return score + pairs[h, q_pos[bi, qi] - lo, k_pos[bi, ki] - lo]

    return _flex(q.device)(q, k, v, score_mod=score_mod, block_mask=plan.block_mask, scale=scale)
