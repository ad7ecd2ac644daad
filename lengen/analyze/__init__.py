"""``lengen analyze``: what finished runs' attention and hidden states say about positions.

Kazemnejad et al. (2023) explain NoPE's length generalization by what its attention and hidden
states do; these analyses ask the same questions of any finished runs, streaming over batches:

- ``attention``: how far apart two models' attention is on the same inputs (JSD, symmetric KL,
  each head matched to its closest head) -- :mod:`~lengen.analyze.divergence`;
- ``distance``: how far back each head attends, in and beyond the training range --
  :mod:`~lengen.analyze.distance`;
- ``probe``: whether a linear probe reads positions from each layer -- :mod:`~lengen.analyze.probe`.

:mod:`~lengen.analyze.capture` reads attention (the attention module's opt-in recorder) and
hidden states, :mod:`~lengen.analyze.inputs` draws the shared inputs, :mod:`~lengen.analyze.runs`
finds and loads runs, :mod:`~lengen.analyze.runner` loops, :mod:`~lengen.analyze.summary` and
:mod:`~lengen.analyze.plots` render, :mod:`~lengen.analyze.app` is the command around them.
"""

ANALYSES = ("attention", "distance", "probe")
