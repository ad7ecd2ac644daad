"""Greedy generation with a KV cache: for samples, and as the reference that teacher-forced
scoring is tested against."""

from __future__ import annotations

import torch

from lengen.model.transformer import Transformer


@torch.no_grad()
def greedy_generate(
    model: Transformer, prompt: torch.Tensor, max_new_tokens: int, eos_id: int | None = None,
    pos: torch.Tensor | None = None,
) -> torch.Tensor:
    """Greedily extend ``prompt`` (``[B, Lp]``, equal lengths) by up to ``max_new_tokens`` tokens.

    Returns ``[B, n]`` new tokens; a row that produced ``eos_id`` keeps emitting it, and the loop
    stops once every row has. ``pos`` (``[B|1, Lp + max_new_tokens]``): explicit position ids of
    the prompt and of every token to come (a task's coupled ids, randomized ids); default: plain.
    """
    b, lp = prompt.shape
    if pos is not None and pos.shape[-1] < lp + max_new_tokens:
        raise ValueError(f"pos covers {pos.shape[-1]} tokens; generation needs {lp + max_new_tokens}")
    cache = model.new_cache(b, lp + max_new_tokens, like=model.tok.weight)
    logits = model(prompt, pos=None if pos is None else pos[:, :lp], cache=cache)
    out = []
    done = torch.zeros(b, dtype=torch.bool, device=prompt.device)
    for step in range(max_new_tokens):
        nxt = logits[:, -1].argmax(-1)
        if eos_id is not None:
            nxt = torch.where(done, torch.full_like(nxt, eos_id), nxt)
            done |= nxt == eos_id
        out.append(nxt)
        if (eos_id is not None and bool(done.all())) or step == max_new_tokens - 1:
            break
        at = lp + step  # the token just chosen sits at index lp + step of the sequence
        logits = model(nxt[:, None], pos=None if pos is None else pos[:, at : at + 1], cache=cache)
    return torch.stack(out, dim=1)
