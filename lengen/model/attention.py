"""Causal self-attention through ``F.scaled_dot_product_attention`` with pluggable PE hooks.

Without an attention bias the fused causal kernel runs (``is_causal=True``). With one (T5,
ALiBi, ...) the bias plus causal mask is built once per forward and shared by the layers when it
is small, and computed per block of queries when it is not, so a long context never holds a
dense ``[heads, L, L]`` tensor. For PEs whose bias is a function of ``q_pos - k_pos`` (T5, ALiBi:
``distance_bias``) a long context builds one ``[heads, distances]`` table per forward (per layer
only when not shared) and cuts every query block out of it; with the usual contiguous positions a
block is a single copy of sliding windows of that table, the causal mask folded in as ``-inf``.
A PE with a contextual bias (CoPE: logits computed from queries and keys) takes the same path: its
hook runs once per query block and layer, on the block's keys (cached ones included).

Evaluation-time methods (``lengen.extend``) reach attention through :class:`AttentionOverride`:
a logit scale (temperature, YaRN's attention factor) and a :class:`Band` (LM-Infinite,
Self-Extend, sliding windows), which :class:`BandedAttention` runs block by block of queries
against only the keys the block may see, so no dense ``[heads, L, L]`` tensor is ever built.

Analysis (``lengen.analyze``) reads attention probabilities through an opt-in recorder on each
:class:`CausalSelfAttention` (``None``, the default, costs nothing): when set, every query block's
``softmax(q·kᵀ·scale + bias + mask)`` is handed to it as the forward computes that block, so
the blocked long-context path streams too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lengen.model import flex_attention
from lengen.model.config import ModelConfig
from lengen.model.kv_cache import KVCache
from lengen.model.positional.base import PositionalEncoding

#: ``recorder(layer, qs, probs)``: the attention probabilities ``[B, H, nq, past + qs + nq]`` of the
#: queries ``[qs, qs + nq)`` of one forward (keys past the causal prefix have probability 0).
AttentionRecorder = Callable[[int, int, torch.Tensor], None]


def attention_probs(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor, scale: float | None) -> torch.Tensor:
    """``softmax(q·kᵀ·scale + mask)`` as SDPA computes it (``mask``: additive, or boolean True = seen)."""
    logits = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5 if scale is None else scale)
    logits = logits.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else logits + mask
    return logits.softmax(-1)


#: block-sized temporaries a contextual bias (CoPE) holds at once: its blocks are this much smaller.
CONTEXTUAL_TEMPORARIES = 8


class AttentionBias:
    """Per-forward provider of ``bias + causal mask`` for a query block against its keys."""

    def __init__(
        self,
        pe: PositionalEncoding,
        q_pos: torch.Tensor,
        k_pos: torch.Tensor,
        past: int,
        dtype: torch.dtype,
        max_elements: int,
        segments: torch.Tensor | None = None,
    ) -> None:
        self.pe, self.q_pos, self.k_pos, self.past, self.dtype = pe, q_pos, k_pos, past, dtype
        self.segments = segments
        lq, lk = q_pos.shape[-1], k_pos.shape[-1]
        per_query = pe.n_heads * lk * q_pos.shape[0]
        if pe.has_contextual_bias:  # CoPE holds several [B, H, block, Lk] temporaries per block
            max_elements //= CONTEXTUAL_TEMPORARIES
        self.block = max(1, min(lq, max_elements // max(per_query, 1)))
        self._dense: torch.Tensor | None = None
        self._lo: int | None = None
        self._tables: dict[object, torch.Tensor] = {}
        self._toeplitz = False
        self._buffer: torch.Tensor | None = None
        if pe.shared_bias and self.block >= lq:
            self._dense = self._build(0, lq, 0)
        elif self.block < lq and pe.has_distance_bias:
            # Long context: the bias is a function of q_pos - k_pos, so one [H, D] table per forward
            # (per layer when not shared) serves every query block by a gather.
            lo = int(q_pos.min()) - int(k_pos.max())
            hi = int(q_pos.max()) - int(k_pos.min())
            if hi - lo < 4 * (lq + lk) + 1024:
                self._lo, self._span = lo, hi - lo + 1
                self._toeplitz = segments is None and self._contiguous(q_pos, k_pos, past)

    @staticmethod
    def _contiguous(q_pos: torch.Tensor, k_pos: torch.Tensor, past: int) -> bool:
        """Batch-shared positions counting up by one, queries continuing the keys (the usual case)."""
        if q_pos.shape[0] != 1 or k_pos.shape[0] != 1:
            return False
        k0 = int(k_pos[0, 0])
        ar = torch.arange(k0, k0 + k_pos.shape[-1], device=k_pos.device)
        return bool(torch.equal(k_pos[0], ar)) and bool(torch.equal(q_pos[0], ar[past:]))

    def _reversed_masked_table(self, layer: int) -> torch.Tensor:
        """``R[h, m] = T[h, d]`` for ``d = hi - m``, ``-inf`` where ``d < 0`` (key after query)."""
        key = ("rev", 0 if self.pe.shared_bias else layer)
        if key not in self._tables:
            table = self._table(layer).masked_fill(self._distances() < 0, float("-inf"))
            self._tables[key] = table.flip(-1)
        return self._tables[key]

    def _toeplitz_block(self, qs: int, qe: int, layer: int) -> torch.Tensor:
        """Bias + causal mask of queries ``[qs, qe)`` cut from the reversed table: row ``i`` is
        ``R[:, w : w + ke]`` with ``w = lq - 1 - qs - i`` (no index tensor, no separate mask pass)."""
        ke, lq = self.past + qe, self.q_pos.shape[-1]
        table = self._reversed_masked_table(layer)
        if torch.is_grad_enabled() or table.device.type != "cpu":  # autograd may keep each block's mask
            windows = table.unfold(-1, ke, 1)  # [H, W, ke], W[w] = R[w : w + ke]
            return windows[:, lq - qe : lq - qs].flip(-2)[None]
        # CPU without autograd: write every block into one buffer per forward. Blocks grow with ke,
        # and fresh allocations of ever larger sizes fragment the heap (RSS reached ~10x nope's at
        # 16k tokens); row copies of contiguous table slices need no temporary at all.
        h, nq = table.shape[0], qe - qs
        if self._buffer is None:
            self._buffer = table.new_empty(h * self.block * (self.past + lq))
        out = self._buffer[: h * nq * ke].view(h, nq, ke)
        for i in range(nq):  # row i = R[:, w : w + ke], w = lq - 1 - qs - i (one contiguous slice)
            w = lq - 1 - qs - i
            out[:, i].copy_(table[:, w : w + ke])
        return out[None]

    def _table(self, layer: int) -> torch.Tensor:
        key = 0 if self.pe.shared_bias else layer
        if key not in self._tables:
            self._tables[key] = self.pe.distance_bias(self._distances(), layer).to(self.dtype)
        return self._tables[key]

    def _distances(self) -> torch.Tensor:
        """Every ``q_pos - k_pos`` of this forward, ascending: the columns of the distance tables."""
        return torch.arange(self._lo, self._lo + self._span, device=self.q_pos.device)

    def _build(self, qs: int, qe: int, layer: int) -> torch.Tensor:
        ke = self.past + qe
        if self._toeplitz:
            return self._toeplitz_block(qs, qe, layer)
        if self._lo is not None:
            idx = self.q_pos[:, qs:qe, None] - self.k_pos[:, None, :ke] - self._lo
            bias = self._table(layer)[:, idx].movedim(0, 1)
        elif self.pe.has_bias:
            bias = self.pe.bias(self.q_pos[:, qs:qe], self.k_pos[:, :ke], layer).to(self.dtype)
        else:  # a contextual bias alone (CoPE): the causal (and segment) mask only
            bias = torch.zeros(self.q_pos.shape[0], 1, qe - qs, ke, dtype=self.dtype, device=self.q_pos.device)
        q_idx = torch.arange(self.past + qs, self.past + qe, device=bias.device)
        k_idx = torch.arange(ke, device=bias.device)
        blocked = k_idx[None, :] > q_idx[:, None]
        if self.segments is not None:  # packed rows: never attend across examples
            blocked = blocked | (self.segments[:, None, qs:qe, None] != self.segments[:, None, None, :ke])
        return bias.masked_fill(blocked, float("-inf"))

    def blocks(self, layer: int):
        """Yield ``(qs, qe, mask)``; keys ``[0, past + qe)`` are the ones the block may see."""
        lq = self.q_pos.shape[-1]
        if self._dense is not None:
            yield 0, lq, self._dense
            return
        for qs in range(0, lq, self.block):
            qe = min(lq, qs + self.block)
            yield qs, qe, self._build(qs, qe, layer)


FarPositions = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Band:
    """Which keys a query sees, and at which positions (evaluation-time attention patterns).

    A key at distance ``d = q_pos - k_pos`` with ``0 <= d < window`` is *near* and seen at the real
    positions. A farther key is seen only when ``far`` is ``"all"`` (Self-Extend) or when it is one
    of the first ``n_global`` positions and ``far`` is ``"global"`` (LM-Infinite), and then as if
    the query sat at ``far_q(q_pos)`` and the key at ``far_k(k_pos)``; ``far="none"`` is a sliding
    window. Position ids are assumed ascending along the keys (as in a forward or a KV cache).
    """

    window: int
    far: str = "none"
    n_global: int = 0
    far_q: FarPositions | None = None
    far_k: FarPositions | None = None

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"a band needs window >= 1, got {self.window}")
        if self.far not in ("none", "global", "all"):
            raise ValueError(f"Band.far must be none, global or all, got {self.far!r}")
        if self.far != "none" and (self.far_q is None or self.far_k is None):
            raise ValueError("a band with far keys needs far_q and far_k")

    def active(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> bool:
        """False when every query-key distance is inside the window (then attention is unchanged)."""
        return int(q_pos.max()) - int(k_pos.min()) >= self.window

    def visible(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(near, far)`` boolean ``[B|1, Lq, Lk]`` masks of the pairs seen in each branch."""
        d = q_pos[:, :, None] - k_pos[:, None, :]
        near = (d >= 0) & (d < self.window)
        far = d >= self.window
        if self.far == "none":
            far = torch.zeros_like(far)
        elif self.far == "global":
            far = far & (k_pos[:, None, :] < self.n_global)
        return near, far


class BandedAttention:
    """Per-forward attention under a :class:`Band`, one block of queries at a time.

    Each block attends to the near keys ``(q_pos - window, q_pos]`` and the far keys of its band
    only. Rotary PEs see far keys at remapped positions: queries and keys are rotated on by the
    position change, and one attention call handles both branches by concatenating head dims
    (``[q_near, q_far] . [k_near, 0]`` for near keys, ``. [0, k_far]`` for far ones). Bias PEs get
    the bias of the remapped positions for far pairs. The per-block key span is bounded by
    ``max_elements``, as for :class:`AttentionBias`.
    """

    def __init__(self, pe: PositionalEncoding, band: Band, q_pos: torch.Tensor, k_pos: torch.Tensor, past: int,
                 dtype: torch.dtype, max_elements: int) -> None:
        self.pe, self.band, self.q_pos, self.k_pos, self.past, self.dtype = pe, band, q_pos, k_pos, past, dtype
        lq, lk = q_pos.shape[-1], k_pos.shape[-1]
        # keys ascending and shared by the batch: each block needs a contiguous slice of them
        self._row = k_pos[0] if k_pos.shape[0] == 1 else None
        far_keys = {"none": 0, "global": band.n_global, "all": lk}[band.far]
        per_query = pe.n_heads * max(q_pos.shape[0], 1)
        block = max(1, min(lq, band.window))
        while block > 1 and per_query * block * (block + band.window + far_keys) > max_elements:
            block //= 2
        self.block = block
        self._far_q: torch.Tensor | None = None
        self._far_k: torch.Tensor | None = None
        if band.far != "none":
            self._far_q, self._far_k = band.far_q(q_pos), band.far_k(k_pos)

    def _span(self, value: int, *, right: bool = False) -> int:
        """Number of keys with position < ``value`` (all of them when positions differ per row)."""
        if self._row is None:
            return 0 if not right else self.k_pos.shape[-1]
        return int(torch.searchsorted(self._row, torch.tensor(value, device=self._row.device)))

    def key_ranges(self, qs: int, qe: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """Key index ranges ``(near, far)`` that queries ``[qs, qe)`` may see."""
        qp = self.q_pos[:, qs:qe]
        lo_pos, hi_pos = int(qp.min()), int(qp.max())
        ke = self.past + qe
        near = (min(self._span(lo_pos - self.band.window + 1), ke), ke) if self._row is not None else (0, ke)
        if self.band.far == "none":
            return near, (0, 0)
        end = min(self._span(hi_pos - self.band.window + 1, right=True), ke)
        if self.band.far == "global":
            end = min(end, self._span(self.band.n_global, right=True))
        return near, (0, max(end, 0))

    def masks(self, qs: int, qe: int) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int], tuple[int, int]]:
        """Boolean ``[B|1, 1, nq, n_near]`` and ``[B|1, 1, nq, n_far]`` masks of a query block."""
        (a, b), (c, d) = self.key_ranges(qs, qe)
        qp = self.q_pos[:, qs:qe]
        near, _ = self.band.visible(qp, self.k_pos[:, a:b])
        _, far = self.band.visible(qp, self.k_pos[:, c:d])
        return near[:, None], far[:, None], (a, b), (c, d)

    def _logits_mask(self, q_pos: torch.Tensor, k_pos: torch.Tensor, seen: torch.Tensor,
                     layer: int) -> torch.Tensor:
        """The boolean mask itself, or for a bias PE the bias of these positions with ``-inf`` unseen."""
        if not self.pe.has_bias:
            return seen
        return self.pe.bias(q_pos, k_pos, layer).to(self.dtype).masked_fill(~seen, float("-inf"))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layer: int,
               scale: float | None = None) -> torch.Tensor:
        """Attention output ``[B, H, Lq, Dh]`` for rotated ``q``, (cached) rotated keys ``k``, values ``v``;
        ``scale`` is the logit scale (default ``1 / sqrt(head dim)``)."""
        rotary = self.pe.has_rotate and self.band.far != "none"
        if scale is None:  # the head dim, also when the rotary branches double it below
            scale = q.shape[-1] ** -0.5
        y = v.new_empty(*q.shape[:3], v.shape[-1])
        for qs in range(0, q.shape[2], self.block):
            qe = min(q.shape[2], qs + self.block)
            near, far, (a, b), (c, d) = self.masks(qs, qe)
            qb, kb, vb = q[:, :, qs:qe], k[:, :, a:b], v[:, :, a:b]
            mask = self._logits_mask(self.q_pos[:, qs:qe], self.k_pos[:, a:b], near, layer)
            if d > c and bool(far.any()):
                far_k = self._far_k[:, c:d]
                mask = torch.cat([mask, self._logits_mask(self._far_q[:, qs:qe], far_k, far, layer)], dim=-1)
                vb = torch.cat([vb, v[:, :, c:d]], dim=2)
                if rotary:  # one call for both branches: [q, q_far] . [k, 0] near, . [0, k_far] far
                    kf = self.pe.rotate(k[:, :, c:d], far_k - self.k_pos[:, c:d])
                    qf = self.pe.rotate(qb, self._far_q[:, qs:qe] - self.q_pos[:, qs:qe])
                    qb = torch.cat([qb, qf], dim=-1)
                    kb = torch.cat([torch.cat([kb, torch.zeros_like(kb)], dim=-1),
                                    torch.cat([torch.zeros_like(kf), kf], dim=-1)], dim=2)
                else:
                    kb = torch.cat([kb, k[:, :, c:d]], dim=2)
            y[:, :, qs:qe] = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask, scale=scale)
        return y


@dataclass
class AttentionOverride:
    """Per-forward evaluation-time changes to attention (built by the model from ``lengen.extend``).

    ``scale`` multiplies the query-key logits (a float, or ``[B|1, 1, Lq, 1]`` per query); an
    additive PE bias is left as trained. ``band`` replaces the causal pattern (see :class:`Band`).
    """

    scale: float | torch.Tensor | None = None
    band: BandedAttention | None = None


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.n_heads, self.head_dim, self.layer = cfg.n_heads, cfg.head_dim, layer
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.bias)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.dropout = cfg.dropout
        self.block_elements = cfg.bias_block_elements
        self.recorder: AttentionRecorder | None = None  # opt-in: lengen.analyze.capture

    def _record_causal(self, q: torch.Tensor, k: torch.Tensor, past: int, scale: float | None) -> None:
        """Hand the recorder the causal (bias-free) attention, a block of queries at a time."""
        b, h, length, _ = q.shape
        block = max(1, min(length, self.block_elements // max(b * h * k.shape[2], 1)))
        for qs in range(0, length, block):
            qe = min(length, qs + block)
            seen = torch.arange(past + qe, device=q.device)[None, :] <= torch.arange(past + qs, past + qe,
                                                                                      device=q.device)[:, None]
            self.recorder(self.layer, qs, attention_probs(q[:, :, qs:qe], k[:, :, : past + qe], seen, scale))

    def forward(
        self,
        x: torch.Tensor,
        pos: torch.Tensor,
        pe: PositionalEncoding,
        bias: AttentionBias | None,
        cache: KVCache | None,
        mask: torch.Tensor | None = None,
        override: AttentionOverride | None = None,
    ) -> torch.Tensor:
        b, length, d = x.shape
        qkv = self.qkv(x).view(b, length, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if pe.has_rotate:  # queries and keys in one call
            (q, k), v = pe.rotate(qkv[:2], pos).unbind(0), qkv[2]
        else:
            q, k, v = qkv.unbind(0)
        scale = None  # SDPA's default, 1 / sqrt(head_dim)
        if override is not None and isinstance(override.scale, torch.Tensor):  # per query: logits scale with q
            q = q * override.scale.to(q.dtype)
        elif override is not None and override.scale is not None:
            scale = float(override.scale) * self.head_dim**-0.5
        past = 0
        if cache is not None:
            past = cache.length(self.layer)
            k, v = cache.update(self.layer, k, v)
        p = self.dropout if self.training else 0.0
        if flex_attention.applies(q, bias, mask, p, past, override, self.recorder):  # CUDA: block-sparse
            y = flex_attention.attend(q, k, v, bias, mask, self.layer, scale)
        elif override is not None and override.band is not None:
            if self.recorder is not None:
                raise ValueError("attention cannot be recorded under an evaluation-time band (lengen.extend)")
            y = override.band.attend(q, k, v, self.layer, scale)
        elif bias is None and mask is not None:  # packed rows: block-diagonal causal mask
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, scale=scale)
            if self.recorder is not None:
                self.recorder(self.layer, 0, attention_probs(q, k, mask, scale))
        elif bias is None:
            if self.recorder is not None:
                self._record_causal(q, k, past, scale)
            if past == 0 or length == 1:
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=past == 0 and length > 1,
                                                   scale=scale)
            else:  # chunked prefill on top of a cache: explicit bottom-right causal mask
                q_idx = torch.arange(past, past + length, device=x.device)
                mask = torch.arange(past + length, device=x.device)[None, :] <= q_idx[:, None]
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, scale=scale)
        else:
            # each block's output goes straight into one y: a list of small outputs, each allocated amid
            # the block's growing temporaries, pins the CPU heap (RSS 5x nope's at 16k tokens, measured)
            y = None
            for qs, qe, mask in bias.blocks(self.layer):
                if pe.has_contextual_bias:  # logits from queries and keys (CoPE), per query block
                    mask = pe.contextual_bias(q[:, :, qs:qe], k[:, :, : past + qe], mask, self.layer, scale).add_(mask)
                part = F.scaled_dot_product_attention(
                    q[:, :, qs:qe], k[:, :, : past + qe], v[:, :, : past + qe], attn_mask=mask, dropout_p=p,
                    scale=scale,
                )
                if qe - qs == length:
                    y = part
                else:
                    if y is None:
                        y = part.new_empty(*part.shape[:2], length, part.shape[-1])
                    y[:, :, qs:qe] = part
                if self.recorder is not None:  # now: a long context's block mask is reused by the next block
                    self.recorder(self.layer, qs, attention_probs(q[:, :, qs:qe], k[:, :, : past + qe], mask, scale))
        return self.out(y.transpose(1, 2).reshape(b, length, d))
