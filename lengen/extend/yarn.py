"""``extend=yarn``: YaRN (Peng et al. 2023, arXiv 2309.00071; transformers' ``"yarn"``).

Per frequency a ramp between extrapolation (fast dims, more than ``beta_fast`` turns over the
training length: unchanged) and interpolation (slow dims, fewer than ``beta_slow`` turns: divided
by ``s``), plus the attention factor ``0.1 ln s + 1`` on queries and keys (so the logits scale by
its square; transformers multiplies cos and sin by it, the same for a fully rotated head).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from lengen.errors import ConfigError
from lengen.extend._rotary import RotaryMethod, default_inv_freq
from lengen.extend.base import register


def correction_dim(turns: float, dims: int, base: float, original_length: int) -> float:
    """The (fractional) pair index whose wavelength fits ``turns`` times into the training length."""
    return dims * math.log(original_length / (turns * 2 * math.pi)) / (2 * math.log(base))


def ramp(dims: int, base: float, original_length: int, beta_fast: float, beta_slow: float) -> torch.Tensor:
    """0 for pairs kept as trained (extrapolated), 1 for pairs interpolated by the factor."""
    low = max(math.floor(correction_dim(beta_fast, dims, base, original_length)), 0)
    high = min(math.ceil(correction_dim(beta_slow, dims, base, original_length)), dims - 1)
    if low == high:
        high += 0.001  # as the reference: no division by zero
    i = torch.arange(dims // 2, dtype=torch.float64)
    return ((i - low) / (high - low)).clamp(0, 1)


def attention_factor(factor: float) -> float:
    return 1.0 if factor <= 1 else 0.1 * math.log(factor) + 1.0


def parameters(dims: int, base: float, factor: float, original_length: int, beta_fast: float = 32.0,
               beta_slow: float = 1.0) -> tuple[torch.Tensor, float]:
    """``(inv_freq, attention_factor)`` as transformers' ``_compute_yarn_parameters``."""
    extrapolation = default_inv_freq(dims, base)
    r = ramp(dims, base, original_length, beta_fast, beta_slow)
    return extrapolation * (1 - r) + extrapolation / factor * r, attention_factor(factor)


@register
class YaRN(RotaryMethod):
    name = "yarn"
    uses_factor = True
    OPTIONS: ClassVar[dict[str, Any]] = {"beta_fast": 32.0, "beta_slow": 1.0, "attention_factor": None}
    summary = ("per-frequency ramp between extrapolation and interpolation (`beta_fast`, `beta_slow`) plus the "
               "attention temperature `0.1 ln s + 1` (Peng et al. 2023)")

    def validate(self) -> None:
        for key in ("beta_fast", "beta_slow", "attention_factor"):
            self.number(key)
        if self.opts["beta_fast"] <= self.opts["beta_slow"]:
            raise ConfigError(f"extend.beta_fast={self.opts['beta_fast']} must exceed "
                              f"extend.beta_slow={self.opts['beta_slow']}")

    def inv_freq(self, length: int | None = None) -> torch.Tensor:
        return parameters(self.dims, self.base, self.factor, self.original_length,
                          self.opts["beta_fast"], self.opts["beta_slow"])[0]

    def attention_factor(self) -> float:
        given = self.opts["attention_factor"]
        return float(given) if given is not None else attention_factor(self.factor)

    def resolved(self) -> dict:
        return {"beta_fast": self.opts["beta_fast"], "beta_slow": self.opts["beta_slow"],
                "attention_factor": round(self.attention_factor(), 6)}
