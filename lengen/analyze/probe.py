"""Linear probes: can a layer's hidden states be read out as positions? (Haviv et al. 2022)

Two targets per token:

- ``position``: the token's absolute position in its input (0-based), at every real token;
- ``to_end``: the tokens left to the end of the example (0 at the last input token), at answer
  positions only (where the next token belongs to the target): a causal model cannot know it
  inside the prompt, but must know it while writing the answer to stop at the right place.

The probe is a least-squares classifier: ridge regression of one-hot class indicators on
``[h, 1]``, predicting the argmax. It is closed-form from streamed sums ``XᵀX`` and ``XᵀY``
(float64): one pass, no training loop, no randomness. It is fit on the in-range lengths and
tested on held-out examples of every length; a class never seen in fitting (a position past the
training lengths) can never be predicted, so it is left out of the score: beyond the training
range the question is whether the positions seen in training are still read the same way when
the input is longer (``n`` counts the tokens scored). A control probe is fit on labels shuffled within each
batch (a control task, Hewitt & Liang 2019): it should stay near chance, else the probe, not the
representation, does the work.
"""

from __future__ import annotations

import torch

TARGETS = ("position", "to_end")


class LinearProbe:
    """Least-squares classifier fit from streamed sufficient statistics."""

    def __init__(self, dim: int, n_classes: int) -> None:
        self.n_classes = n_classes
        self.xtx = torch.zeros(dim + 1, dim + 1, dtype=torch.float64)
        self.xty = torch.zeros(dim + 1, n_classes, dtype=torch.float64)
        self.weights: torch.Tensor | None = None

    @staticmethod
    def _design(x: torch.Tensor) -> torch.Tensor:
        x = x.detach().to("cpu", torch.float64)
        return torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Add tokens ``x`` ``[N, D]`` with class labels ``y`` ``[N]`` (all below ``n_classes``)."""
        design = self._design(x)
        self.xtx += design.T @ design
        self.xty.index_add_(1, y.to("cpu", torch.long), design.T)

    def fit(self, ridge: float) -> LinearProbe:
        """Solve ``(XᵀX + λI) W = XᵀY``; ``λ = ridge x`` the mean squared feature x tokens (bias
        column unregularised), so ``ridge`` means the same for any hidden size or data size."""
        dim = self.xtx.shape[0] - 1
        lam = ridge * float(self.xtx.diagonal()[:dim].sum()) / max(dim, 1)
        reg = torch.full((dim + 1,), lam, dtype=torch.float64)
        reg[-1] = 0.0
        self.weights = torch.linalg.lstsq(self.xtx + torch.diag(reg), self.xty).solution
        return self

    @property
    def seen(self) -> torch.Tensor:
        """``[n_classes]`` bool: the classes that occurred in fitting (the only ones it can predict)."""
        return self.xty[-1] > 0  # the bias column of XᵀY counts each class

    def known(self, y: torch.Tensor) -> torch.Tensor:
        """Which labels ``y`` are classes seen in fitting."""
        y = y.to("cpu", torch.long)
        return (y >= 0) & (y < self.n_classes) & self.seen[y.clamp(0, self.n_classes - 1)]

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        if self.weights is None:
            raise RuntimeError("fit the probe before predicting")
        scores = self._design(x) @ self.weights
        return scores.masked_fill(~self.seen, float("-inf")).argmax(-1)
