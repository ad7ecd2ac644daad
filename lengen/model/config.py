"""Model hyper-parameters as a plain dataclass (built from the Hydra ``model`` group)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

ACTIVATIONS = ("relu", "gelu", "swiglu")
NORMS = ("layernorm", "rmsnorm")


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int = 512
    activation: str = "relu"
    norm: str = "layernorm"
    bias: bool = True
    dropout: float = 0.0
    tie_embeddings: bool = True
    norm_eps: float = 1e-5
    #: bias blocks larger than this many elements are computed per query block (long contexts).
    bias_block_elements: int = 1 << 22

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(
                f"model.d_model={self.d_model} is not divisible by model.n_heads={self.n_heads}; "
                f"choose n_heads among the divisors of d_model"
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"model.activation={self.activation!r} is unknown; valid: {', '.join(ACTIVATIONS)}")
        if self.norm not in NORMS:
            raise ValueError(f"model.norm={self.norm!r} is unknown; valid: {', '.join(NORMS)}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @classmethod
    def from_mapping(cls, cfg: Any, vocab_size: int) -> ModelConfig:
        names = {f.name for f in fields(cls)} - {"vocab_size"}
        return cls(vocab_size=vocab_size, **{k: v for k, v in dict(cfg).items() if k in names})
