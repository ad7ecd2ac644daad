"""What each analysis measures, in words (the head of its summary markdown)."""

EXPLAIN = {
    "attention": """\
**Measures.** For each pair of runs, on the same inputs, per layer and length: every query's
attention over its causal prefix is compared between a head of A and a head of B by the
Jensen–Shannon divergence (natural log, 0 = identical, ln 2 ≈ 0.693 = disjoint) and the symmetric
KL (KL(p‖q) + KL(q‖p)), averaged over queries; each head of A is matched to its closest head of B
in that layer (smallest JSD) and the layer's value is the mean over A's heads. Pairs of one PE's
runs with different seeds are the baseline: how different two equally trained models of the same
PE are.
""",
    "distance": """\
**Measures.** Per query at position i with attention p over keys j ≤ i: *mean dist.* = Σ p_j (i − j),
the attention-weighted distance back (0 = the query itself); *argmax dist.* = i − argmax p, the
distance of the most-attended key; *relative dist.* = mean dist. / i (queries i ≥ 1): 0 = local,
1 = the first token. Averaged over queries, then over heads (per-head rows are in the CSV).
""",
    "probe": """\
**Measures.** A linear probe (least-squares classifier with a small ridge) per layer reads the
token's absolute *position* (every token) and the tokens left *to the end* of the example (answer
tokens only). It is fit on even-numbered examples of the in-range lengths and tested on the
odd-numbered examples of every length, scoring only tokens whose label occurred in fitting (a
position past the training lengths cannot be named by the probe): beyond the training range the
question is whether positions seen in training still read the same in a longer input.
*Shuffled-label acc.* is the same probe fit on labels shuffled within each batch: the chance level
of the probe itself. Layer 0 is the input to the first block: token embeddings (plus an absolute
PE's), so for other PEs its accuracy is what token identity alone tells about position.
""",
}
