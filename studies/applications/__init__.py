"""Curve applications of the Curve Circuits article as measured tools.

- :mod:`.extraction`: per-pixel curve map from the curve families' attribution; Canny wrapper.
- :mod:`.scenes`: seeded synthetic scenes with ground-truth curve/line/angle masks and arcs.
- :mod:`.benchmark`: curve precision/recall/F1, line false-positive rate, combing band; grid tuning.
- :mod:`.bench_curves`: the benchmark run (``circuits bench-curves``).
- :mod:`.combing_plan`: the combing edit (pruned combing pathways) the benchmark compares.
- :mod:`.splines`: differentiable anti-aliased cubic Bézier strokes and the tracer.
- :mod:`.factors`: NMF of a layer's activations; the butterfly worked example.
- :mod:`.commands`, :mod:`.figures`: what ``circuits curves/trace/factor`` write.
"""
