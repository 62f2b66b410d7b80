"""Hypothesis strategies for edit plans, shared by the unit and the real-data property tests
(``tests/unit/test_edit_properties.py``, ``tests/real/test_edit_properties_real.py``)."""

from __future__ import annotations

from hypothesis import strategies as st

LAYER_NAMES = ["mixed3a", "mixed3b", "3b", "4a", "mixed5b", "conv2d0", "conv2d2", "mixed3b_5x5_bottleneck",
               "mixed3b_5x5", "mixed4c_pool_reduce", "7z", "mixed", "", "logits", "MIXED3B"]

# --------------------------------------------------------------------------- strategies
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
)
garbage = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), children, max_size=4)
    ),
    max_leaves=12,
)
indices = st.one_of(st.integers(-5, 1000), st.integers(), st.sampled_from([0, 1, 479, 480, 831, 832, 10**30]))
unit_strings = st.one_of(
    st.builds(lambda layer, i: f"{layer}:{i}", st.sampled_from(LAYER_NAMES), indices),
    st.builds(lambda layer, name: f"{layer}/{name}", st.sampled_from(LAYER_NAMES),
              st.sampled_from(["curves", "lines", "early_curves", "nope", "", "a/b", "cur ves"])),
    st.from_regex(r"\A[a-z0-9_]{0,10}[:/,]-?[0-9]{0,25}\Z"),
    st.text(max_size=20),
)
unit_lists = st.one_of(unit_strings, st.lists(st.one_of(unit_strings, garbage), max_size=5), garbage)
modes = st.one_of(st.sampled_from(["zero", "mean", "resample", "Zero", "", "max"]), garbage)
means = st.one_of(
    st.none(), st.lists(st.one_of(st.floats(), st.integers(), garbage), max_size=4),
    st.lists(st.floats(0, 10), min_size=1, max_size=3), garbage,
)


# in-range units of adjacent layers (valid for both checkpoints), and lists of them
good_units = st.one_of(
    st.builds(lambda i: f"mixed3b:{i}", st.integers(0, 479)),
    st.builds(lambda i: f"3a:{i}", st.integers(0, 255)),
    st.builds(lambda i: f"mixed4a:{i}", st.integers(0, 479)),
    st.builds(lambda i: f"mixed3b_5x5:{i}", st.integers(0, 63)),
    st.sampled_from(["mixed3b/curves", "mixed3a/curves"]),
)
good_unit_lists = st.one_of(good_units, st.lists(good_units, min_size=1, max_size=3, unique=True))
kernels = st.one_of(
    st.builds(lambda c, k, v: [[[v] * k] * k] * c, st.sampled_from([1, 16, 32, 64, 256]), st.sampled_from([1, 3, 5]),
              st.floats(-1, 1)),
    garbage,
)


PLAUSIBLE = {
    "units": unit_lists, "src": unit_lists, "dst": unit_lists, "mode": modes, "means": means,
    "seed": st.one_of(st.integers(), st.none(), garbage), "families": garbage,
    "sign": st.one_of(st.sampled_from(["positive", "negative", "all", "both", "neg"]), garbage),
    "via": st.one_of(st.none(), st.sampled_from(["5x5", "3x3", "mixed3b_5x5", "1x1", "nope"]), garbage),
    "branch": st.one_of(st.sampled_from(["mixed3b_5x5", "mixed3b_3x3", "mixed4a_5x5", "3b_5x5", "x"]), garbage),
    "factor": st.one_of(st.floats(), st.integers(), garbage),
    "kernel": kernels, "weights": st.one_of(st.lists(kernels, max_size=3), kernels),
    "biases": st.one_of(st.none(), st.lists(st.floats(), max_size=3), garbage),
    "reads": st.one_of(st.sampled_from(["conv", "input", "x"]), garbage),
}
VALID = {
    "units": good_unit_lists, "dst": good_unit_lists,
    "src": st.one_of(st.builds(lambda i: f"3a:{i}", st.integers(0, 255)), st.just("mixed3a/curves")),
    "mode": st.sampled_from(["zero", "mean", "resample"]), "means": st.none(), "seed": st.none(),
    "families": st.none(), "sign": st.sampled_from(["positive", "negative", "all"]), "via": st.none(),
    "factor": st.floats(-4, 4), "branch": st.sampled_from(["mixed3b_5x5", "mixed3b_3x3", "mixed4a_5x5"]),
    "reads": st.sampled_from(["conv", "input"]), "biases": st.none(),
}
