"""Decoder-only Transformer (pre-norm) whose only position-aware part is a pluggable PE."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lengen.model.attention import (
    AttentionBias,
    AttentionOverride,
    Band,
    BandedAttention,
    CausalSelfAttention,
)
from lengen.model.config import ModelConfig
from lengen.model.kv_cache import KVCache
from lengen.model.positional.base import PositionalEncoding


def _norm(cfg: ModelConfig) -> nn.Module:
    if cfg.norm == "rmsnorm":
        return nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
    return nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps, bias=cfg.bias)


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.activation = cfg.activation
        width = 2 * cfg.d_ff if cfg.activation == "swiglu" else cfg.d_ff
        self.up = nn.Linear(cfg.d_model, width, bias=cfg.bias)
        self.down = nn.Linear(cfg.d_ff, cfg.d_model, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(x)
        if self.activation == "swiglu":
            gate, h = h.chunk(2, dim=-1)
            h = F.silu(gate) * h
        elif self.activation == "gelu":
            h = F.gelu(h)
        else:
            h = F.relu(h)
        return self.down(h)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = _norm(cfg), _norm(cfg)
        self.attn = CausalSelfAttention(cfg, layer)
        self.mlp = FeedForward(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, pos, pe, bias, cache, mask=None, override=None):
        x = x + self.drop(self.attn(self.norm1(x), pos, pe, bias, cache, mask, override))
        return x + self.drop(self.mlp(self.norm2(x)))


def packed_causal_mask(segments: torch.Tensor) -> torch.Tensor:
    """``[B, 1, L, L]`` boolean mask: causal, and only within the same example of a packed row."""
    length = segments.shape[-1]
    causal = torch.ones(length, length, dtype=torch.bool, device=segments.device).tril()
    return (segments[:, None, :, None] == segments[:, None, None, :]) & causal


class Transformer(nn.Module):
    """``forward(input_ids, pos=None, cache=None, segments=None) -> logits``.

    ``pos`` holds explicit position ids (``[B, L]`` or ``[1, L]``); by default they count from
    the cache's length, so generation and one full forward see the same positions. ``segments``
    (``[B, L]``) marks which example each token of a packed training row belongs to: attention
    stays inside an example, so a packed row computes exactly what separate rows would.

    ``extension`` (None unless ``lengen.extend`` installed one) changes attention at evaluation
    time through two optional methods, each called once per forward: ``logit_scale(q_pos)`` (a
    float or ``[B|1, 1, L, 1]`` multiplier of the query-key logits, or None) and ``band(q_pos,
    k_pos)`` (a :class:`~lengen.model.attention.Band` or None).
    """

    def __init__(self, cfg: ModelConfig, pe: PositionalEncoding) -> None:
        super().__init__()
        self.cfg, self.pe = cfg, pe
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layers))
        self.norm = _norm(cfg)
        self.extension = None
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.head.weight = self.tok.weight
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2 style scaling of residual projections
            if name.endswith(("attn.out.weight", "mlp.down.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def _override(self, pos, k_pos, past, dtype, segments) -> AttentionOverride | None:
        """This forward's evaluation-time attention changes (None without an extension)."""
        ext = self.extension
        if ext is None:
            return None
        if segments is not None:
            raise ValueError("evaluation-time extensions do not apply to packed rows (segments)")
        scale = ext.logit_scale(pos) if hasattr(ext, "logit_scale") else None
        band: Band | None = ext.band(pos, k_pos) if hasattr(ext, "band") else None
        plan = None
        if band is not None and band.active(pos, k_pos):
            if self.pe.has_contextual_bias:
                raise ValueError(f"evaluation-time attention bands do not support pe={self.pe.name} (a contextual "
                                 f"bias counts over all keys)")
            plan = BandedAttention(self.pe, band, pos, k_pos, past, dtype, self.cfg.bias_block_elements)
        return None if scale is None and plan is None else AttentionOverride(scale, plan)

    def bind_vocabulary(self, vocab) -> None:
        """Tell a PE that reads token ids (Abacus) what they stand for (``tokenizer.vocab``)."""
        if hasattr(self.pe, "bind_vocabulary"):
            self.pe.bind_vocabulary(vocab)

    def new_cache(self, batch: int, max_len: int, like: torch.Tensor) -> KVCache:
        c = self.cfg
        return KVCache(c.n_layers, batch, c.n_heads, max_len, c.head_dim, like=like)

    def forward(
        self,
        input_ids: torch.Tensor,
        pos: torch.Tensor | None = None,
        cache: KVCache | None = None,
        segments: torch.Tensor | None = None,
    ) -> torch.Tensor:
        length = input_ids.shape[1]
        past = cache.length() if cache is not None else 0
        if pos is None:
            pos = torch.arange(past, past + length, device=input_ids.device)[None, :]
        if segments is not None and cache is not None:
            raise ValueError("packed rows (segments) cannot be used with a KV cache")
        x = self.tok(input_ids)
        if self.pe.has_embed:
            x = self.pe.embed(x, pos)
        if self.pe.has_token_embed:  # (Abacus) the cache carries what continues the sequence
            x, state = self.pe.token_embed(x, input_ids, segments, cache.pe_state if cache is not None else None)
            if cache is not None:
                cache.pe_state = state
        x = self.drop(x)
        bias = mask = None
        k_pos = override = None
        biased = self.pe.has_bias or self.pe.has_contextual_bias
        if biased or self.extension is not None:
            k_pos = pos if past == 0 else torch.cat([cache.positions(), pos], dim=-1)
            override = self._override(pos, k_pos, past, x.dtype, segments)
        if biased and (override is None or override.band is None):
            bias = AttentionBias(self.pe, pos, k_pos, past, x.dtype, self.cfg.bias_block_elements, segments)
        elif segments is not None:
            mask = packed_causal_mask(segments)
        if cache is not None:
            cache.remember_positions(pos)
        for block in self.blocks:
            x = block(x, pos, self.pe, bias, cache, mask, override)
        return self.head(self.norm(x))
