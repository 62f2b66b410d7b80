"""PrunePathway and Scale (edits.pathways) on random weights, against the block written out with
``torch.nn.functional`` from the unedited model's weights: a 1x1 ``dst`` reads ``W'·x + b`` with the
selected ``src`` columns scaled (zeroed); a 5x5 ``dst`` reads ``W_s ⋆ pad(relu(W_b'·x + b_b)) + b_s``
with the bottleneck's ``src`` columns changed for that row only; a linearised ``dst`` loses (or
scales) the selected taps of its expanded kernel. Every other unit is bitwise unchanged. The errors,
claims, ops and serialised forms are pinned too (mutation testing, issue 14; see docs/mutation.md)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from circuits.catalog import load_catalog
from circuits.model import InceptionV1
from circuits.spec import get_spec
from circuits.units import Unit
from edits import EditError, EditPlan, Linearize, PrunePathway, Scale
from edits.pathways import MAX_SCALE_FACTOR, in_branch

SPEC = get_spec("inceptionv1_caffe")
SRC = [5, 65]  # mixed3a:5 and mixed3a_3x3:1 (mixed3a's 3x3 branch starts at channel 64); both live on x


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = InceptionV1(SPEC)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, 0.1)
    return m.eval().double()


@pytest.fixture(scope="module")
def x():
    return torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def _run(model, x, layers):
    with torch.no_grad():
        return model.run(x, layers)


def _changed(w: torch.Tensor, cols, sign: str, factor: float) -> torch.Tensor:
    """``w`` (out, in, …) with columns ``cols`` scaled where their sign is selected (by hand)."""
    w = w.clone()
    for c in cols:
        col = w[:, c]
        keep = {"all": torch.zeros_like(col, dtype=torch.bool), "positive": col <= 0, "negative": col >= 0}[sign]
        w[:, c] = torch.where(keep, col, col * factor)
    return w


@pytest.mark.parametrize("sign", ["all", "positive", "negative"])
@pytest.mark.parametrize("factor", [0.0, -0.25])
def test_a_1x1_unit_reads_the_changed_columns_and_nothing_else_changes(model, x, sign, factor):
    edit = (PrunePathway(src="3a:5,mixed3a_3x3:1", dst="3b:5", sign=sign) if factor == 0 else
            Scale(src="3a:5,mixed3a_3x3:1", dst="3b:5", factor=factor, sign=sign))
    edited, _ = EditPlan([edit]).apply(model)
    names = ["mixed3a", "mixed3b_1x1_pre_relu", "mixed3b"]
    before, after = _run(model, x, names), _run(edited, x, names)
    conv = model.block("mixed3b").unit("1x1").conv
    w = _changed(conv.weight[5:6].detach(), SRC, sign, factor)
    expect = F.conv2d(before["mixed3a"], w, conv.bias[5:6].detach())
    torch.testing.assert_close(after["mixed3b_1x1_pre_relu"][:, 5:6], expect, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(after["mixed3b_1x1_pre_relu"][:, 5:6], before["mixed3b_1x1_pre_relu"][:, 5:6])
    others = [c for c in range(480) if c != 5]
    assert torch.equal(after["mixed3b"][:, others], before["mixed3b"][:, others])


@pytest.mark.parametrize("sign, factor", [("all", 0.0), ("positive", 0.0), ("negative", 0.5)])
def test_a_5x5_unit_reads_bottleneck_copies_with_the_changed_columns(model, x, sign, factor):
    edit = (PrunePathway(src=["3a:5", "3a:65"], dst="3b:330", sign=sign) if factor == 0 else
            Scale(src=["3a:5", "3a:65"], dst="3b:330", factor=factor, sign=sign))
    edited, record = EditPlan([edit]).apply(model)
    names = ["mixed3a", "mixed3b_5x5_pre_relu", "mixed3b"]
    before, after = _run(model, x, names), _run(edited, x, names)
    blk = model.block("mixed3b")
    b, s = blk.unit("5x5_bottleneck").conv, blk.unit("5x5").conv
    wb = _changed(b.weight.detach(), SRC, sign, factor)
    hidden = F.relu(F.conv2d(before["mixed3a"], wb, b.bias.detach()))
    expect = F.conv2d(hidden, s.weight[10:11].detach(), s.bias[10:11].detach(), padding=2)  # mixed3b:330 = 5x5[10]
    torch.testing.assert_close(after["mixed3b_5x5_pre_relu"][:, 10:11], expect, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(after["mixed3b_5x5_pre_relu"][:, 10:11], before["mixed3b_5x5_pre_relu"][:, 10:11])
    others = [c for c in range(480) if c != 330]
    assert torch.equal(after["mixed3b"][:, others], before["mixed3b"][:, others])
    # one copy per bottleneck unit whose src entries of that sign are non-zero (random weights: all rows read all)
    col = b.weight.detach()[:, SRC, 0, 0]
    n = int({"all": (col != 0), "positive": (col > 0), "negative": (col < 0)}[sign].any(1).sum())
    assert 0 < n <= 32 and edited.block("mixed3b").unit("5x5_bottleneck").conv.out_channels == 32 + n
    assert record.added_channels == {"mixed3b_5x5_bottleneck": n}


@pytest.mark.parametrize("factor", [0.0, 3.0])
def test_a_linearised_unit_loses_the_selected_taps_of_its_expanded_kernel(model, x, factor):
    lin = Linearize("3b_5x5", ["3b:330"])
    edit = (PrunePathway(src="3a:5", dst="3b:330", sign="negative") if factor == 0 else
            Scale(src="3a:5", dst="3b:330", factor=factor, sign="negative"))
    only_lin, _ = EditPlan([lin]).apply(model)
    edited, record = EditPlan([lin, edit]).apply(model)
    names = ["mixed3a", "mixed3b_5x5_pre_relu", "mixed3b"]
    base, after = _run(only_lin, x, names), _run(edited, x, names)
    blk = model.block("mixed3b")
    b, s = blk.unit("5x5_bottleneck").conv, blk.unit("5x5").conv
    wlin = torch.einsum("bhw,b->hw", s.weight[10].detach(), b.weight[:, 5, 0, 0].detach())  # taps of mixed3a:5
    removed = torch.where(wlin < 0, wlin, torch.zeros_like(wlin))[None, None]
    delta = (factor - 1) * F.conv2d(base["mixed3a"][:, 5:6], removed, padding=2)
    torch.testing.assert_close(after["mixed3b_5x5_pre_relu"][:, 10:11], base["mixed3b_5x5_pre_relu"][:, 10:11] + delta,
                               rtol=1e-10, atol=1e-10)
    assert delta.abs().max() > 1e-3
    others = [c for c in range(480) if c != 330]
    assert torch.equal(after["mixed3b"][:, others], base["mixed3b"][:, others])
    assert record.added_channels == {}  # no bottleneck copies: the kernel is explicit
    notes = [op.note for op in edit.compile(only_lin)]
    assert notes == [f"mixed3b:330: {edit.type_name} negative{'' if factor == 0 else ' ×3'} on the linearised kernel"]


def test_ops_claims_and_rescaled_zeros():
    m = InceptionV1(SPEC)
    p = PrunePathway(src="3a:1,mixed3a_3x3:2", dst=["3b:5", "3b:330", "mixed3b_5x5:10"], sign="positive")
    assert p.claims(SPEC) == [
        (("mixed3b_1x1", 5, 1), "mixed3a:1 → mixed3b:5", "dst"), (("mixed3b_1x1", 5, 66), "mixed3a:66 → mixed3b:5", "dst"),
        (("mixed3b_5x5", 10, 1), "mixed3a:1 → mixed3b:330", "dst"),
        (("mixed3b_5x5", 10, 66), "mixed3a:66 → mixed3b:330", "dst"),
    ]
    ops = Scale(src="3a:0,3a:2", dst="3b:5", factor=-0.25).compile(m)
    assert [(op.key, op.index, op.note) for op in ops] == [("mixed3b.b1x1.conv.weight", (5,), "mixed3b:5: Scale all ×-0.25")]
    row = torch.tensor([-1.0, 2.0, 4.0, -3.0])[:, None, None]
    assert ops[0].transform(row)[:, 0, 0].tolist() == [0.25, 2.0, -1.0, -3.0]
    assert row[:, 0, 0].tolist() == [-1.0, 2.0, 4.0, -3.0]  # the input row is not modified
    ops = PrunePathway(src="3a:0,3a:3", dst="3b:5", sign="negative").compile(m)
    assert ops[0].note == "mixed3b:5: PrunePathway negative"
    new = ops[0].transform(row)[:, 0, 0]
    assert new.tolist() == [0.0, 2.0, 4.0, 0.0] and not torch.signbit(new).any()  # +0, never -0
    zero = Scale(src="3a:0", dst="3b:5", factor=-0.25, sign="positive").compile(m)[0].transform(
        torch.tensor([0.0, 1.0])[:, None, None])[:, 0, 0]
    assert zero.tolist() == [0.0, 1.0] and not torch.signbit(zero[0])  # a zero weight is not positive: stays +0
    zero = Scale(src="3a:0", dst="3b:5", factor=-0.25, sign="negative").compile(m)[0].transform(
        torch.tensor([0.0, -1.0])[:, None, None])[:, 0, 0]
    assert zero.tolist() == [0.0, -1.0] and not torch.signbit(zero[0])  # nor negative
    ops = PrunePathway(src="3a:1", dst=["3b:5", "3b:330"]).compile(m)  # a 1x1 dst, then a 5x5 dst
    assert [getattr(op, "note", None) for op in ops][:2] == [
        "mixed3b:5: PrunePathway all", "mixed3b_5x5_bottleneck: 32 → 64 channels (PrunePathway all)"]
    assert len(ops) == 5
    assert PrunePathway(src="3a:0", dst="3b:5", sign="positive").compile(m)[0].transform(row)[:, 0, 0].tolist() == \
        [-1.0, 2.0, 4.0, -3.0]
    ops = PrunePathway(src="3a:1", dst="3b:330").compile(m)
    assert [op.note for op in ops] == [
        "mixed3b_5x5_bottleneck: 32 → 64 channels (PrunePathway all)",
        f"mixed3b_5x5_bottleneck[32:64] = copies of {list(range(32))} (PrunePathway all)",
        "mixed3b_5x5_bottleneck bias of the copies", "mixed3b:330 reads the copies (PrunePathway all)"]
    assert ops[0].summary == {"op": "add_channels", "block": "mixed3b", "conv": "mixed3b_5x5_bottleneck",
                              "channels": 32, "widths": [32, 64], "reason": "PrunePathway all"}
    assert [(op.key, op.index) for op in ops[1:]] == [
        ("mixed3b.b5x5_bottleneck.conv.weight", (slice(32, 64),)), ("mixed3b.b5x5_bottleneck.conv.bias", (slice(32, 64),)),
        ("mixed3b.b5x5.conv.weight", (10,))]
    # pool branch dst, via restricting a mixed list, 4a dst with a mixed3b src
    assert PrunePathway(src="3a:1", dst=["3b:450", "3b:5"], via="pool").claims(SPEC) == [
        (("mixed3b_pool_reduce", 34, 1), "mixed3a:1 → mixed3b:450", "dst")]
    assert PrunePathway(src="3b:7", dst="4a:0", via="mixed4a_1x1").claims(SPEC) == [
        (("mixed4a_1x1", 0, 7), "mixed3b:7 → mixed4a:0", "dst")]


def test_normalised_fields_serialisation_and_family_resolution():
    assert PrunePathway(src="3a:1", dst="3b:1").sign == "all" and PrunePathway(src="3a:1", dst="3b:1").via is None
    assert [PrunePathway(src="3a:1", dst="3b:1", via=v).via for v in ("mixed3b_pool", "pool", "3b_3x3", " 5x5 ",
                                                                       "pool_reduce", "1x1", "mixed3b_pool_reduce")] == \
        ["mixed3b_pool_reduce", "pool_reduce", "mixed3b_3x3", "5x5", "pool_reduce", "1x1", "mixed3b_pool_reduce"]
    s = Scale(src="3a:1", dst="3b:1", factor=2)
    assert s.to_dict() == {"type": "Scale", "src": ["mixed3a:1"], "dst": ["mixed3b:1"], "factor": 2.0, "sign": "all",
                           "via": None}
    assert type(s.factor) is float and Scale(src="3a:1", dst="3b:1").factor == 1.0
    assert Scale(src="3a:1", dst="3b:1", factor=MAX_SCALE_FACTOR).factor == 1e6
    assert Scale(src="3a:1", dst="3b:1", factor=-1e6).factor == -1e6
    assert in_branch(["3b:5", "3b:330", "3b:200", "mixed3b_5x5:1"], "mixed3b_5x5", SPEC) == \
        [Unit("mixed3b", 330), Unit("mixed3b_5x5", 1)]
    assert in_branch("3b:129", "3b_3x3", "inceptionv1_caffe") == [Unit("mixed3b", 129)]
    curves = load_catalog(SPEC)["mixed3b/curves"].units  # a family key is looked up in the spec's catalog
    assert in_branch("mixed3b/curves", "mixed3b_5x5", SPEC) == [Unit("mixed3b", i) for i in curves if 320 <= i < 416]
    plain = PrunePathway(src="3a:1", dst="3b:1")
    m = InceptionV1(SPEC)
    assert plain.prepare(m) is plain
    fam = PrunePathway(src="mixed3a/curves", dst="mixed3b/curves", via="5x5").prepare(m)
    assert all(":" in u for u in (*fam.src, *fam.dst)) and fam.via == "5x5"
    assert fam.src[0].startswith("mixed3a:") and fam.dst[0].startswith("mixed3b:")


@pytest.mark.parametrize("kwargs, field, message", [
    (dict(sign="neg"), "sign", "'neg' is not a sign; valid choices: ['all', 'positive', 'negative']"),
    (dict(sign=None), "sign", "None is not a sign"),
    (dict(via="7x7"), "via", "'7x7' is not a branch; valid choices: ['1x1', '3x3', '5x5', 'pool_reduce', 'pool', "
                             "\"<block>_<branch>, e.g. 'mixed3b_5x5'\"]"),
    (dict(via="mixed3b_7x7"), "via", "'mixed3b_7x7' is not a branch"),
    (dict(via="zz_5x5"), "via", "'zz_5x5' is not a branch"),
    (dict(via="conv2d2_1x1"), "via", "'conv2d2_1x1' is not a branch"),
    (dict(via=5), "via", "via must be a branch name such as '5x5' or 'mixed3b_5x5', got 5"),
    (dict(src=[]), "src", "names no unit; give at least one, e.g. '3b:379'"),
    (dict(dst="zz"), "dst", "cannot parse 'zz': expected a unit such as '3b:379' or a family such as 'mixed3b/curves'"),
])
def test_construction_rejections(kwargs, field, message):
    kwargs = {"src": "3a:1", "dst": "3b:1", **kwargs}
    with pytest.raises(EditError) as e:
        PrunePathway(**kwargs)
    text, expect = str(e.value), f"PrunePathway field '{field}': {message}"
    assert e.value.field == field and (text == expect or text.startswith(expect + "; valid choices: "))


@pytest.mark.parametrize("kwargs, field, message", [
    (dict(dst="3b:1,4a:1"), "dst", "dst units must be in one inception block; got units of mixed3b, mixed4a"),
    (dict(src="3b:1", dst="3b:2"), "src",
     "mixed3b:1 is not a channel of mixed3a, the input of mixed3b (where the dst units are)"),
    (dict(src="mixed3a_3x3_bottleneck:1"), "src", "mixed3a_3x3_bottleneck:1 is not a channel of mixed3a, the input of mixed3b (where the dst units are)"),
    (dict(via="3x3"), "via", "no dst unit is in the 3x3 branch of mixed3b"),
    (dict(via="mixed4a_1x1"), "via", "via 'mixed4a_1x1' is not a branch of mixed3b, where the dst units are"),
    (dict(dst="3b:999"), "dst", "mixed3b:999 is out of range for inceptionv1_caffe: mixed3b has units 0..479"),
])
def test_validation_rejections(kwargs, field, message):
    kwargs = {"src": "3a:1", "dst": "3b:1", **kwargs}
    with pytest.raises(EditError) as e:
        PrunePathway(**kwargs).validate(SPEC)
    text, expect = str(e.value), f"PrunePathway field '{field}': {message}"
    assert e.value.field == field and (text == expect or text.startswith(expect + "; valid choices: "))


@pytest.mark.parametrize("factor, message", [
    (float("nan"), "factor must be a finite number, got nan"),
    (float("inf"), "factor must be a finite number, got inf"),
    ("1", "factor must be a finite number, got '1'"),
    (True, "factor must be a finite number, got True"),
    (1e6 + 1, "factor 1000001.0 is beyond ±1e+06 (it would overflow float32 weights or activations)"),
    (-2e6, "factor -2000000.0 is beyond ±1e+06 (it would overflow float32 weights or activations)"),
])
def test_scale_factor_rejections(factor, message):
    with pytest.raises(EditError) as e:
        Scale(src="3a:1", dst="3b:1", factor=factor)
    assert e.value.field == "factor" and str(e.value) == f"Scale field 'factor': {message}"


def test_bottleneck_units_a_dst_row_does_not_read_are_not_copied(model, x):
    import copy

    sparse = copy.deepcopy(model)
    with torch.no_grad():
        sparse.block("mixed3b").unit("5x5").conv.weight[10, :4] = 0.0  # mixed3b:330 reads bottleneck units 4…31 only
    edited, record = EditPlan([PrunePathway(src="3a:5", dst="3b:330")]).apply(sparse)
    assert record.added_channels == {"mixed3b_5x5_bottleneck": 28}
    before, after = _run(sparse, x, ["mixed3a", "mixed3b"]), _run(edited, x, ["mixed3a", "mixed3b_5x5_pre_relu", "mixed3b"])
    blk = sparse.block("mixed3b")
    b, s = blk.unit("5x5_bottleneck").conv, blk.unit("5x5").conv
    wb = b.weight.detach().clone()
    wb[:, 5] = 0.0
    expect = F.conv2d(F.relu(F.conv2d(before["mixed3a"], wb, b.bias.detach())), s.weight[10:11].detach(),
                      s.bias[10:11].detach(), padding=2)
    torch.testing.assert_close(after["mixed3b_5x5_pre_relu"][:, 10:11], expect, rtol=1e-12, atol=1e-12)
    others = [c for c in range(480) if c != 330]
    assert torch.equal(after["mixed3b"][:, others], before["mixed3b"][:, others])


def test_a_dst_row_reading_no_changed_bottleneck_unit_is_skipped_and_the_next_is_rewired(model, x):
    import copy

    sparse = copy.deepcopy(model)
    b = sparse.block("mixed3b").unit("5x5_bottleneck").conv
    pos = b.weight.detach()[:, 5, 0, 0] > 0  # bottleneck units with a positive weight from mixed3a:5
    with torch.no_grad():
        sparse.block("mixed3b").unit("5x5").conv.weight[10, pos] = 0.0  # mixed3b:330 reads none of them
    edited, record = EditPlan([PrunePathway(src="3a:5", dst=["3b:330", "3b:331"], sign="positive")]).apply(sparse)
    assert record.added_channels == {"mixed3b_5x5_bottleneck": int(pos.sum())}
    names = ["mixed3a", "mixed3b_5x5_pre_relu", "mixed3b"]
    before, after = _run(sparse, x, names), _run(edited, x, names)
    s = sparse.block("mixed3b").unit("5x5").conv
    wb = _changed(b.weight.detach(), [5], "positive", 0.0)
    expect = F.conv2d(F.relu(F.conv2d(before["mixed3a"], wb, b.bias.detach())), s.weight[11:12].detach(),
                      s.bias[11:12].detach(), padding=2)
    torch.testing.assert_close(after["mixed3b_5x5_pre_relu"][:, 11:12], expect, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(after["mixed3b_5x5_pre_relu"][:, 11:12], before["mixed3b_5x5_pre_relu"][:, 11:12])
    others = [c for c in range(480) if c != 331]
    assert torch.equal(after["mixed3b"][:, others], before["mixed3b"][:, others])  # 330 included: nothing changed


def test_branch_sources_before_layer_sources_and_family_key_sources():
    assert [c[0][2] for c in PrunePathway(src="mixed3a_3x3:2,3a:1,mixed3a_1x1:3", dst="3b:5").claims(SPEC)] == [66, 1, 3]
    curves = load_catalog(SPEC)["mixed3a/curves"].units
    assert [c[0][2] for c in PrunePathway(src="mixed3a/curves", dst="3b:5").claims(SPEC)] == list(curves)


def test_the_note_names_every_non_zero_factor_and_no_zero_one():
    m = InceptionV1(SPEC)
    notes = {f: Scale(src="3a:0", dst="3b:5", factor=f).compile(m)[0].note for f in (1, 0, 2.5, -1e6)}
    assert notes == {1: "mixed3b:5: Scale all ×1", 0: "mixed3b:5: Scale all", 2.5: "mixed3b:5: Scale all ×2.5",
                     -1e6: "mixed3b:5: Scale all ×-1e+06"}
