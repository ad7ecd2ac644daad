"""Reading a model's attention and hidden states during an ordinary forward.

Attention comes from the opt-in recorder of :class:`~lengen.model.attention.CausalSelfAttention`
(one call per query block, so the blocked long-context path streams); hidden states from forward
hooks. Both are attached only inside a ``with`` block and always removed, so a model handed to
evaluation afterwards runs exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from lengen.model.attention import AttentionRecorder
from lengen.model.transformer import Transformer


@contextmanager
def recording(model: Transformer, recorder: AttentionRecorder) -> Iterator[None]:
    """Hand every layer's attention probabilities to ``recorder(layer, qs, probs)`` while inside."""
    if model.extension is not None:
        raise ValueError("attention is analysed on the trained model, without an evaluation-time extension")
    layers = [block.attn for block in model.blocks]
    for attn in layers:
        attn.recorder = recorder
    try:
        yield
    finally:
        for attn in layers:
            attn.recorder = None


class AttentionMaps:
    """A recorder that assembles one forward's attention per layer: ``[B, H, L, L]``, zero above the
    diagonal. Holds one batch only: the caller reads :meth:`maps` before the next forward."""

    def __init__(self) -> None:
        self._blocks: dict[int, list[tuple[int, torch.Tensor]]] = {}

    def __call__(self, layer: int, qs: int, probs: torch.Tensor) -> None:
        self._blocks.setdefault(layer, []).append((qs, probs))

    def maps(self) -> list[torch.Tensor]:
        out = []
        for layer in sorted(self._blocks):
            blocks = sorted(self._blocks[layer], key=lambda b: b[0])
            n_keys = blocks[-1][1].shape[-1]
            out.append(torch.cat([F.pad(p, (0, n_keys - p.shape[-1])) for _, p in blocks], dim=2))
        self._blocks.clear()
        return out


@torch.no_grad()
def attention_maps(model: Transformer, input_ids: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's attention probabilities ``[B, H, L, L]`` for one batch (one forward)."""
    recorder = AttentionMaps()
    with recording(model, recorder):
        model(input_ids)
    return recorder.maps()


@torch.no_grad()
def hidden_states(model: Transformer, input_ids: torch.Tensor) -> list[torch.Tensor]:
    """``[B, L, D]`` per layer: index 0 is the input to the first block (token embedding plus an
    absolute PE's), index ``i`` the residual stream after block ``i``."""
    states: list[torch.Tensor] = []
    hooks = [model.drop.register_forward_hook(lambda _m, _i, out: states.append(out))]
    hooks += [block.register_forward_hook(lambda _m, _i, out: states.append(out)) for block in model.blocks]
    try:
        model(input_ids)
    finally:
        for hook in hooks:
            hook.remove()
    return states
