"""Rotation of weight patterns, the equivariance measure on synthetic families, and the
HandwrittenFamily edit's validation and serialisation (no real data needed)."""

import math

import pytest
import torch

from circuits.spec import get_spec
from edits import EditError, EditPlan, HandwrittenFamily
from edits.handwritten import analytic_pattern, rotate_pattern, rotate_spatial, source_shift_matrix
from studies.measure.equivariance import equivariance

REGULAR = [45.0 * i for i in range(8)]  # sources every 45°: 90° rotations permute them exactly


def _template(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(8, 5, 5, generator=g, dtype=torch.float64)


def test_quarter_turn_moves_right_to_top_both_paths():
    k = torch.zeros(1, 5, 5, dtype=torch.float64)
    k[0, 2, 3] = 1.0  # one tap right of the centre
    exact = rotate_spatial(k, 90.0)  # torch.rot90
    assert exact[0, 1, 2] == 1.0 and exact.sum() == 1.0  # counter-clockwise with y up: right → top
    bilinear = rotate_spatial(k, 90.0 + 1e-6)  # grid_sample path
    assert torch.allclose(bilinear, exact, atol=1e-6)


def test_four_quarter_turns_return_the_template_exactly():
    t = _template()
    r = t
    for _ in range(4):
        r = rotate_pattern(r, 90.0, REGULAR)
    assert torch.equal(r, t)
    # two half turns of a 180°-shifted pattern also return it; and 90° is a pure permutation of sources
    m = source_shift_matrix(REGULAR, 90.0)
    assert torch.equal(m.sum(1), torch.ones(8, dtype=torch.float64)) and set(m.flatten().tolist()) == {0.0, 1.0}


def test_bilinear_rotation_is_within_interpolation_tolerance():
    # a Gaussian blob is rotation invariant: one 45° turn, and 45° there and back, change its central 3x3 by
    # bilinear interpolation error only (measured 0.042 and 0.064)
    y, x = torch.meshgrid(torch.arange(-2.0, 3.0), torch.arange(-2.0, 3.0), indexing="ij")
    k = torch.exp(-(x ** 2 + y ** 2) / 8.0)[None].double()
    once = rotate_spatial(k, 45.0)
    assert torch.allclose(once[0, 1:4, 1:4], k[0, 1:4, 1:4], atol=0.05)
    assert torch.allclose(rotate_spatial(once, -45.0)[0, 1:4, 1:4], k[0, 1:4, 1:4], atol=0.08)
    assert once[0, 2, 2] == pytest.approx(1.0)  # the centre tap is a fixed point


def test_source_interpolation_is_circular_linear_and_wraps():
    src = [10.0, 100.0, 300.0]
    m = source_shift_matrix(src, 45.0)  # query for source 100° is 55°: between 10° and 100°, t = 0.5
    assert m[1].tolist() == pytest.approx([0.5, 0.5, 0.0])
    m = source_shift_matrix(src, 30.0)  # query for 10° is 340°: between 300° and 10° (wraps), t = 40/70
    assert m[0].tolist() == pytest.approx([40 / 70, 0.0, 30 / 70])
    with pytest.raises(ValueError, match="share an orientation"):
        source_shift_matrix([0.0, 360.0], 10.0)


def test_perfectly_equivariant_family_scores_one_and_shuffled_much_less():
    t = _template(1)
    ors = [0.0, 90.0, 180.0, 270.0]
    pats = torch.stack([rotate_pattern(t, o, REGULAR) for o in ors])
    res = equivariance(pats, ors, REGULAR, n_shuffles=200, seed=0)
    assert res.family_score == pytest.approx(1.0, abs=1e-9)
    assert (res.per_unit["score"] > 1 - 1e-9).all()
    assert res.control["mean"] < 0.6
    # only the 4 cyclic relabellings of the 24 keep every orientation difference (and score 1)
    assert 0.08 < float((res.shuffled > 1 - 1e-9).mean()) < 0.3
    wrong = equivariance(pats, [90.0, 180.0, 270.0, 0.0][::-1], REGULAR, n_shuffles=50)  # orientations misassigned
    assert wrong.family_score < 0.5


def test_equivariance_is_seeded_and_checks_inputs():
    t = _template(2)
    ors = [0.0, 90.0, 180.0, 270.0]
    pats = torch.stack([rotate_pattern(t, o, REGULAR) for o in ors]) + 0.3 * _template(3)[None]
    a, b = (equivariance(pats, ors, REGULAR, n_shuffles=100, seed=5) for _ in range(2))
    assert a.control == b.control
    with pytest.raises(ValueError, match="at least 2"):
        equivariance(pats[:1], ors[:1], REGULAR)
    with pytest.raises(ValueError, match="orientations"):
        equivariance(pats, ors[:3], REGULAR)


def test_analytic_template_signs_and_exact_rotation():
    p = analytic_pattern(90.0, REGULAR)  # opens upwards: at the centre tap the local curve opens towards 90°
    assert p.norm().item() == pytest.approx(1.0)
    assert p[2, 2, 2] > 0 and p[6, 2, 2] < 0 and abs(p[0, 2, 2]) < 1e-12  # same +, opposite −, perpendicular 0
    # a ∪ with its bottom at the centre tap: the arms rise into the upper rows, little in the bottom row
    assert p[:, 4].abs().sum() < 0.05 * p[:, 0].abs().sum()
    for o in (0.0, 90.0, 180.0):
        assert torch.allclose(rotate_pattern(analytic_pattern(o, REGULAR), 90.0, REGULAR),
                              analytic_pattern(o + 90.0, REGULAR), atol=1e-12)


def _edit(**kw):
    base = dict(dst=["mixed3b:9", "mixed3b:306", "mixed3b:330"], src=["mixed3a:92", "mixed3a:107", "mixed3a:130"],
                template="learned", template_unit="mixed3b:330", orientations=[4.0, 17.0, 150.0],
                src_orientations=[4.4, 40.4, 91.3], kernel=_template(4)[:3].tolist(), template_orientation=150.0)
    base.update(kw)
    return HandwrittenFamily(**base)


def test_handwritten_round_trips_json_and_yaml():
    plan = EditPlan([_edit(), _edit(template="analytic", template_unit=None, kernel=None, scale=0.5,
                                    dst=["mixed3b:413"], orientations=[359.0], rest="keep")], name="hw")
    spec = get_spec("inceptionv1_caffe")
    plan.validate(spec)
    for text, load in ((plan.to_json(), EditPlan.from_json), (plan.to_yaml(), EditPlan.from_yaml)):
        back = load(text)
        assert back == plan and back.to_dict() == plan.to_dict()
    e = plan.edits[0]
    assert e.kernel[1][2][3] == _template(4)[1, 2, 3].item()  # float64 kept exactly


def test_handwritten_family_keys_round_trip_and_resolve_from_the_catalog():
    plan = EditPlan([HandwrittenFamily("3b/curves", "mixed3a/curves", template="analytic")])
    assert plan.edits[0].dst == ("mixed3b/curves",)
    back = EditPlan.from_json(plan.to_json())
    assert back == plan
    block, dst, ors, src, sors = back.edits[0].resolved(get_spec("inceptionv1_caffe"))
    assert block == "mixed3b" and len(dst) == len(ors) == 19 and len(src) == len(sors) == 8
    assert (str(dst[0]), ors[0], src[0], sors[0]) == ("mixed3b:9", 3.9, 92, 4.4)  # the packaged catalog's
    with pytest.raises(EditError, match="not both"):
        HandwrittenFamily(["mixed3b/curves", "mixed3b:1"], "mixed3a/curves", template="analytic")


def test_handwritten_rotated_patterns_of_a_prepared_edit():
    e = _edit()
    units, pats = e.patterns(get_spec("inceptionv1_caffe"))
    assert [str(u) for u in units] == ["mixed3b:9", "mixed3b:306", "mixed3b:330"]
    assert torch.equal(pats[2], torch.tensor(e.kernel, dtype=torch.float64))  # the template unit gets the template
    assert torch.allclose(pats[0], rotate_pattern(pats[2], 4.0 - 150.0, e.src_orientations))


@pytest.mark.parametrize("kw, field, match", [
    (dict(template="drawn"), "template", "valid choice"),
    (dict(rest="half"), "rest", "valid choice"),
    (dict(template_unit=None), "template_unit", "needs template_unit"),
    (dict(kernel=[[[1.0]]]), "kernel", "expected a finite kernel"),
    (dict(orientations=[1.0, math.nan, 2.0]), "orientations", "NaN"),
    (dict(radius=-1), "radius", r"\(0, 100\)"),
])
def test_handwritten_rejects_malformed_fields(kw, field, match):
    with pytest.raises(EditError, match=match) as ei:
        _edit(**kw)
    assert ei.value.field == field


@pytest.mark.parametrize("kw, field, match", [
    (dict(template_unit="mixed3b:1"), "template_unit", "not one of the dst units"),
    (dict(orientations=[1.0, 2.0]), "orientations", "2 orientation"),
    (dict(src=["mixed3b:1", "mixed3a:2", "mixed3a:3"]), "src", "channels of mixed3a"),
    (dict(dst=["mixed3b:9", "mixed4a:1", "mixed3b:330"]), "dst", "one inception block"),
    (dict(dst=["mixed3b:9", "mixed3b:999", "mixed3b:330"]), "dst", "0..479"),
    (dict(kernel=_template(4)[:2].tolist()), "kernel", "2 source rows for 3"),
])
def test_handwritten_validates_against_the_spec(kw, field, match):
    plan = EditPlan([_edit(**kw)])
    with pytest.raises(EditError, match=match) as ei:
        plan.validate(get_spec("inceptionv1_caffe"))
    assert ei.value.field == field


def test_handwritten_apply_and_undo_on_random_weights():
    from circuits.model import InceptionV1

    torch.manual_seed(0)
    model = InceptionV1("inceptionv1_caffe").eval()  # random weights: no real data needed
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plan = EditPlan([HandwrittenFamily("mixed3b/curves", "mixed3a/curves", template="analytic", rest="keep")])
    edited, rec = plan.apply(model)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())  # caller untouched
    assert set(rec.changed) <= {"mixed3b.b1x1.conv.weight", "mixed3b.linear_paths.3x3.conv.weight",
                                "mixed3b.linear_paths.3x3.conv.bias", "mixed3b.linear_paths.5x5.conv.weight",
                                "mixed3b.linear_paths.5x5.conv.bias"}
    assert rec.changed["mixed3b.b1x1.conv.weight"] == 3 * 8  # rest="keep": only the 8 source columns of 3 rows
    scale = rec.applied_plan.edits[0].scale
    assert scale is not None and scale > 0
    restored = rec.undo(edited)
    now = restored.state_dict()
    assert now.keys() == before.keys() and all(torch.equal(now[k], v) for k, v in before.items())


def test_bootstrap_accuracy_recovered_fraction():
    import numpy as np

    from studies.artificial_curves import bootstrap_accuracy

    rng = np.random.default_rng(0)
    n = 400
    nat = rng.random(n) < 0.8
    zero = nat & (rng.random(n) < 0.75)  # loses a quarter of the natural hits
    lost = np.flatnonzero(nat & ~zero)
    hw = zero.copy()
    hw[lost[: len(lost) // 2]] = True  # wins back exactly half of them
    t = bootstrap_accuracy({"natural": nat, "zero_ablated": zero, "hw": hw}, 500, seed=1).set_index("variant")
    assert t.loc["hw", "recovered"] == pytest.approx(((hw.mean() - zero.mean()) / (nat.mean() - zero.mean())))
    assert abs(t.loc["hw", "recovered"] - 0.5) < 0.02
    assert t.loc["hw", "recovered_low"] < t.loc["hw", "recovered"] < t.loc["hw", "recovered_high"]
    assert t.loc["zero_ablated", "delta_high"] < 0 and math.isnan(t.loc["natural", "recovered"])
    again = bootstrap_accuracy({"natural": nat, "zero_ablated": zero, "hw": hw}, 500, seed=1).set_index("variant")
    assert again.equals(t)  # seeded
