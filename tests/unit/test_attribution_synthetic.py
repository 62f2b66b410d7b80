"""Linear attribution on a randomly initialised InceptionV1 (no real data): the sums."""

from __future__ import annotations

import pytest
import torch

from circuits.model import InceptionV1, linearized
from studies.measure.attribution import attribute


@pytest.fixture(scope="module")
def rand_model():
    torch.manual_seed(0)
    m = InceptionV1("inceptionv1_caffe")
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("bias"):
                p.uniform_(-0.5, 0.5)
    return m


@pytest.fixture(scope="module")
def images():
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def _units(m):
    o = m.spec.block("mixed3b").branch_offsets()
    return {b: o[b][0] + 3 for b in o}  # one unit per branch


@pytest.mark.parametrize("branch", ["1x1", "3x3", "5x5", "pool_reduce"])
def test_gated_attribution_sums_to_pre_minus_bias(rand_model, images, branch):
    u = f"3b:{_units(rand_model)[branch]}"
    ref = rand_model.run(images, ["mixed3b_pre_relu"])["mixed3b_pre_relu"][:, int(u.split(':')[1])]
    for positions in ("all", "max"):
        a = attribute(rand_model, u, images, "mixed3a", positions)
        torch.testing.assert_close(a.pre, ref, rtol=1e-5, atol=1e-4)
        total = a.values.flatten(1).sum(1)
        torch.testing.assert_close(total + a.bias_terms, a.target, rtol=1e-5, atol=1e-3)
        if branch in ("1x1", "pool_reduce"):  # no upstream bias (3a, or its max-pool): exact split of pre − bias
            assert a.bias_terms.abs().max() == 0
            torch.testing.assert_close(total, a.target, rtol=1e-5, atol=1e-3)
        else:  # the bottleneck's bias, through its ReLU gate
            assert a.bias_terms.abs().max() > 0


def test_attribution_two_layers_back_sums(rand_model, images):
    a = attribute(rand_model, "3b:300", images, "conv2d2", "all")
    torch.testing.assert_close(a.values.flatten(1).sum(1) + a.bias_terms, a.target, rtol=1e-4, atol=1e-2)
    assert a.values.shape[1] == 192


def test_expanded_equals_gated_for_direct_unit_and_linear_surrogate_otherwise(rand_model, images):
    u1 = f"3b:{_units(rand_model)['1x1']}"
    g, e = (attribute(rand_model, u1, images, "mixed3a", "all", method=m) for m in ("gated", "expanded"))
    torch.testing.assert_close(e.values, g.values, rtol=1e-4, atol=1e-4)
    u5 = _units(rand_model)["5x5"]
    e = attribute(rand_model, f"3b:{u5}", images, "mixed3a", "all", method="expanded")
    lin = linearized(rand_model, biases=False)
    a3a = rand_model(images, stop_at="mixed3a")
    want = lin(a3a, start_at="mixed3a", stop_at="mixed3b")[:, u5]
    # interior positions only: the expanded kernel ignores zero padding of the bottleneck's bias-free input
    torch.testing.assert_close(e.values.flatten(1).sum(1), want.flatten(1).sum(1), rtol=1e-4, atol=1e-2)


def test_bad_arguments(rand_model, images):
    with pytest.raises(ValueError, match="method"):
        attribute(rand_model, "3b:1", images, method="magic")
    with pytest.raises(ValueError, match="before mixed3b"):
        attribute(rand_model, "3b:1", images, "mixed4a")
    with pytest.raises(ValueError, match="outside"):
        attribute(rand_model, "3b:1", images, positions=(99, 0))
    with pytest.raises(IndexError):
        attribute(rand_model, "3b:999", images)


def test_attribution_vector_for_a_direction_objective(rand_model, images):
    from circuits.units import Family
    from studies.measure.attribution import attribution_vector

    fam = Family("some", "mixed3a", (5, 1, 40))
    v = attribution_vector(rand_model, "3b:300", images[0], family=fam, positions="all")
    full = attribute(rand_model, "3b:300", images[:1], "mixed3a", "all")
    assert v.shape == (3,)
    torch.testing.assert_close(v, full.vector()[0, [5, 1, 40]])
    torch.testing.assert_close(full.vector().sum() + full.bias_terms[0], full.target[0], rtol=1e-5, atol=1e-3)
