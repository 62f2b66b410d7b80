"""Structural edits on the real BVLC weights and real images: PrunePathway, Scale, Linearize,
SetWeights/ReplaceUnits, structural undo, save/load of widened models.

Exactness is checked against references computed by hand from the *unedited* block's own
modules; "bitwise" means ``torch.equal``.
"""

from __future__ import annotations

import hashlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from circuits.expanded import expand
from circuits.model import LinearPath, WideConv2d
from edits import (
    Ablate,
    EditError,
    EditPlan,
    Linearize,
    PrunePathway,
    ReplaceUnits,
    Scale,
    SetWeights,
    in_branch,
    load_edited,
    save_edited,
)

#: mixed3b units of the 5x5 branch (BVLC offsets: 5x5 is [320, 416)); curve units there.
DST = [330, 368, 386]
LOC = [d - 320 for d in DST]  # branch-local channels
DST_REFS = [f"mixed3b:{d}" for d in DST]
ALL_3A = [f"mixed3a:{i}" for i in range(256)]


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def _hashes(model: nn.Module) -> dict[str, str]:
    return {k: f"{tuple(v.shape)}:{_digest(v)}" for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def images(sample_batch) -> torch.Tensor:
    return sample_batch(10, 4)


@pytest.fixture(scope="module")
def act3a(caffe_model, images) -> torch.Tensor:
    """mixed3a activations (post-ReLU, the input of mixed3b) of the real images."""
    with torch.no_grad():
        return caffe_model(images, stop_at="mixed3a")


@pytest.fixture(scope="module")
def src10(caffe_model) -> list[int]:
    """The 10 mixed3a units with the largest expanded weights (L1 over taps, summed over DST)."""
    e = expand(caffe_model, "mixed3a", "mixed3b", dst_units=DST).weight
    return e.abs().sum((0, 2, 3)).topk(10).indices.tolist()


def _pre3b(model, a: torch.Tensor, names=("mixed3b_pre_relu",)) -> dict[str, torch.Tensor]:
    with torch.no_grad(), model.capture(list(names)) as cap:
        model(a, start_at="mixed3a", stop_at="mixed3b")
        return dict(cap)


def _others(dst: list[int]) -> torch.Tensor:
    keep = torch.ones(480, dtype=torch.bool)
    keep[dst] = False
    return keep


def _close(got: torch.Tensor, ref: torch.Tensor, rel: float = 2e-6) -> None:
    """Equal to float rounding: |got − ref| ≤ rel · max|ref|."""
    tol = rel * float(ref.abs().max())
    err = float((got.double() - ref.double()).abs().max())
    assert err <= tol, f"max error {err:.3g} > {tol:.3g}"


@pytest.fixture(scope="module")
def unedited(caffe_model, act3a):
    return _pre3b(caffe_model, act3a)["mixed3b_pre_relu"]


@pytest.fixture(scope="module")
def linearised(caffe_model, act3a):
    before = _hashes(caffe_model)
    edited, record = EditPlan([Linearize("mixed3b_5x5", DST_REFS)]).apply(caffe_model)
    assert _hashes(caffe_model) == before
    return edited, record, _pre3b(edited, act3a, ["mixed3b_pre_relu", "mixed3b_5x5_pre_relu"])


# ---------------------------------------------------------------------------- (a) PrunePathway
def test_prune_through_bottleneck_is_exact(caffe_model, act3a, src10, unedited):
    before = _hashes(caffe_model)
    edited, record = EditPlan([PrunePathway(src=[f"3a:{s}" for s in src10], dst=DST_REFS)]).apply(caffe_model)
    assert _hashes(caffe_model) == before, "the caller's model was modified"
    out = _pre3b(edited, act3a, ["mixed3b_pre_relu", "mixed3b_5x5_bottleneck"])
    got = out["mixed3b_pre_relu"]
    # reference: the unedited block with the src channels of its input zeroed for the bottleneck; dst rows
    blk = caffe_model.mixed3b
    a0 = act3a.clone()
    a0[:, src10] = 0
    with torch.no_grad():
        ref = blk.b5x5.conv(blk.b5x5_bottleneck(a0))[:, LOC]
    _close(got[:, DST], ref)
    assert float((got[:, DST] - unedited[:, DST]).abs().max()) > 1.0, "the prune changed nothing visible"
    keep = _others(DST)
    assert torch.equal(got[:, keep], unedited[:, keep]), "another unit of mixed3b changed"
    # the original bottleneck channels are bitwise unchanged too; the copies follow them
    with torch.no_grad():
        b0 = blk.b5x5_bottleneck(act3a)
    assert torch.equal(out["mixed3b_5x5_bottleneck"][:, :32], b0)
    # record: which tensors, how many copies
    wb = blk.b5x5_bottleneck.conv.weight[:, src10, 0, 0]
    feeds = (blk.b5x5.conv.weight[LOC] != 0).flatten(2).any(2).any(0)
    n_copies = int(((wb != 0).any(1) & feeds).sum())
    assert record.added_channels == {"mixed3b_5x5_bottleneck": n_copies} and n_copies > 0
    assert edited.mixed3b.b5x5_bottleneck.conv.out_channels == 32 + n_copies
    assert isinstance(edited.mixed3b.b5x5.conv, WideConv2d) and edited.mixed3b.b5x5.conv.in_channels == 32 + n_copies
    assert set(record.changed) == {
        "mixed3b.b5x5_bottleneck.conv.weight", "mixed3b.b5x5_bottleneck.conv.bias", "mixed3b.b5x5.conv.weight"}
    assert record.structure[0]["op"] == "add_channels" and record.to_dict()["structure"] == list(record.structure)


def test_prune_positive_bottleneck_weights(caffe_model, act3a, src10, unedited):
    """Without Linearize, sign refers to the bottleneck's raw 1x1 weights from src."""
    edited, _ = EditPlan([PrunePathway(src=[f"mixed3a:{s}" for s in src10], dst=DST_REFS[:2],
                                       sign="positive")]).apply(caffe_model)
    got = _pre3b(edited, act3a)["mixed3b_pre_relu"]
    bott, spat = caffe_model.mixed3b.b5x5_bottleneck.conv, caffe_model.mixed3b.b5x5.conv
    wb = bott.weight.clone()
    sel = wb[:, src10]
    wb[:, src10] = torch.where(sel > 0, torch.zeros_like(sel), sel)
    with torch.no_grad():
        ref = F.conv2d(F.conv2d(act3a, wb, bott.bias).relu(), spat.weight[LOC[:2]], spat.bias[LOC[:2]], padding=2)
    _close(got[:, DST[:2]], ref)
    keep = _others(DST[:2])
    assert torch.equal(got[:, keep], unedited[:, keep])


def test_prune_direct_paths_1x1_and_pool(caffe_model, act3a, src10, unedited):
    """1x1 and pool branches: the raw weight entries, no structure added."""
    dst = [5, 450]  # mixed3b_1x1:5 and mixed3b_pool_reduce:34
    edited, record = EditPlan([PrunePathway(src=[f"mixed3a:{s}" for s in src10], dst=[f"mixed3b:{d}" for d in dst],
                                            sign="negative")]).apply(caffe_model)
    assert record.structure == () and record.added_channels == {}
    got = _pre3b(edited, act3a)["mixed3b_pre_relu"]
    blk = caffe_model.mixed3b

    def pruned(conv, row):
        w = conv.weight[row:row + 1].clone()
        sel = w[:, src10]
        w[:, src10] = torch.where(sel < 0, torch.zeros_like(sel), sel)
        return w, conv.bias[row:row + 1]

    with torch.no_grad():
        ref1 = F.conv2d(act3a, *pruned(blk.b1x1.conv, 5))
        ref2 = F.conv2d(F.max_pool2d(act3a, 3, 1, 1), *pruned(blk.bpool_reduce.conv, 34))
    _close(got[:, 5:6], ref1)
    _close(got[:, 450:451], ref2)
    keep = _others(dst)
    assert torch.equal(got[:, keep], unedited[:, keep])
    n_neg = int((blk.b1x1.conv.weight[5, src10] < 0).sum() + (blk.bpool_reduce.conv.weight[34, src10] < 0).sum())
    assert record.num_changed == n_neg
    # `via` restricts to one branch: only the pool unit changes
    only_pool, _ = EditPlan([PrunePathway(src=[f"mixed3a:{s}" for s in src10], dst=[f"mixed3b:{d}" for d in dst],
                                          sign="negative", via="mixed3b_pool")]).apply(caffe_model)
    assert torch.equal(only_pool.mixed3b.b1x1.conv.weight, blk.b1x1.conv.weight)
    assert torch.equal(only_pool.mixed3b.bpool_reduce.conv.weight, edited.mixed3b.bpool_reduce.conv.weight)


def test_scale_through_bottleneck(caffe_model, act3a, src10, unedited):
    src = [f"mixed3a:{s}" for s in src10]
    edited, _ = EditPlan([Scale(src=src, dst=DST_REFS, factor=0.5)]).apply(caffe_model)
    got = _pre3b(edited, act3a)["mixed3b_pre_relu"]
    blk = caffe_model.mixed3b
    a = act3a.clone()
    a[:, src10] *= 0.5
    with torch.no_grad():
        ref = blk.b5x5.conv(blk.b5x5_bottleneck(a))[:, LOC]
    _close(got[:, DST], ref)
    keep = _others(DST)
    assert torch.equal(got[:, keep], unedited[:, keep])
    # factor 0 is a prune, bitwise
    s0, _ = EditPlan([Scale(src=src, dst=DST_REFS, factor=0)]).apply(caffe_model)
    p0, _ = EditPlan([PrunePathway(src=src, dst=DST_REFS)]).apply(caffe_model)
    assert _hashes(s0) == _hashes(p0)
    # an alias of a dst unit (mixed3b_5x5:10 is mixed3b:330) names the same channel once
    alias, _ = EditPlan([PrunePathway(src=src, dst=[*DST_REFS, "mixed3b_5x5:10"])]).apply(caffe_model)
    assert _hashes(alias) == _hashes(p0)


# ---------------------------------------------------------------------------- (b) Linearize
def test_linearize_equals_branch_without_bottleneck_relu(caffe_model, act3a, unedited, linearised):
    edited, record, out = linearised
    got = out["mixed3b_pre_relu"]
    bott, spat = caffe_model.mixed3b.b5x5_bottleneck.conv, caffe_model.mixed3b.b5x5.conv
    a = act3a.double()
    with torch.no_grad():  # float64 reference, zero padding of the bottleneck output (bias included) at the border
        ref = F.conv2d(F.conv2d(a, bott.weight.double(), bott.bias.double()), spat.weight[LOC].double(),
                       spat.bias[LOC].double(), padding=2)
    _close(got[:, DST], ref)
    # the border rows/columns, separately (where the ones-map matters)
    border = torch.ones(28, 28, dtype=torch.bool)
    border[2:-2, 2:-2] = False
    _close(got[:, DST][..., border], ref[..., border])
    # equal to the original wherever the bottleneck pre-activations z are ≥ 0: linearised − original
    # = W_s ⋆ pad(z − relu(z)) = W_s ⋆ pad(min(z, 0)), which only negative z contribute to
    with torch.no_grad():
        z = F.conv2d(act3a.double(), bott.weight.double(), bott.bias.double())
        diff = F.conv2d(z.clamp(max=0), spat.weight[LOC].double(), None, padding=2)
    err = float(((got[:, DST].double() - unedited[:, DST].double()) - diff).abs().max())
    assert err <= 4e-6 * float(ref.abs().max()), err
    keep = _others(DST)
    assert torch.equal(got[:, keep], unedited[:, keep]), "another unit of mixed3b changed"
    # hook semantics: the branch's pre-ReLU hook point sees the linearised values
    assert torch.equal(out["mixed3b_5x5_pre_relu"], got[:, 320:416])
    assert record.structure[0]["op"] == "linear_path" and record.added_channels == {}
    assert isinstance(edited.mixed3b.linear_paths["5x5"], LinearPath)
    # expanded weights of the edited model read the linear path
    e0 = expand(caffe_model, "mixed3a", "mixed3b", dst_units=DST).weight
    e1 = expand(edited, "mixed3a", "mixed3b", dst_units=DST).weight
    _close(e1, e0, rel=1e-6)
    assert torch.equal(e1, edited.mixed3b.linear_paths["5x5"].conv.weight[:, :256])


def test_negative_expanded_prune_never_lowers(caffe_model, act3a, src10, linearised):
    """After Linearize, dropping the negative expanded weights from post-ReLU (≥ 0) sources can only raise dst."""
    _, _, out = linearised
    lin = out["mixed3b_pre_relu"][:, DST]
    for src in ([f"mixed3a:{s}" for s in src10], ALL_3A):
        plan = EditPlan([Linearize("mixed3b_5x5", DST_REFS), PrunePathway(src=src, dst=DST_REFS, sign="negative")])
        edited, record = plan.apply(caffe_model)
        assert record.added_channels == {}, "linearised units are pruned on their kernel, not by duplication"
        k = edited.mixed3b.linear_paths["5x5"].conv.weight
        cols = [int(s.split(":")[1]) for s in src]
        assert bool((k[:, cols] >= 0).all())
        got = _pre3b(edited, act3a)["mixed3b_pre_relu"][:, DST]
        tol = 2e-6 * float(lin.abs().max())
        assert float((got - lin).min()) >= -tol, "a dst pre-activation went down"
        assert float((got - lin).max()) > 1.0
    # and the positive ones can only lower it
    edited, _ = EditPlan([Linearize("mixed3b_5x5", DST_REFS),
                          PrunePathway(src=ALL_3A, dst=DST_REFS, sign="positive")]).apply(caffe_model)
    got = _pre3b(edited, act3a)["mixed3b_pre_relu"][:, DST]
    assert float((got - lin).max()) <= 2e-6 * float(lin.abs().max())


def test_linearize_validation(caffe_model):
    with pytest.raises(EditError, match=r"mixed3b:5 is not in branch mixed3b_5x5: its units are mixed3b:320..415"):
        EditPlan([Linearize("mixed3b_5x5", ["mixed3b:5"])]).validate(caffe_model)
    with pytest.raises(EditError, match="field 'branch'"):
        Linearize("mixed3b_1x1", ["mixed3b:5"])
    # a linearised unit cannot also be ablated in the same plan (the linear path would override it)
    with pytest.raises(EditError, match="edits\\[1\\]"):
        EditPlan([Linearize("3b_5x5", DST_REFS), Ablate("mixed3b:330")]).validate(caffe_model)
    assert Linearize("3b_5x5", "mixed3b_5x5:10").branch == "mixed3b_5x5"
    assert [str(u) for u in in_branch(["mixed3b:5", *DST_REFS], "mixed3b_5x5", caffe_model.spec)] == DST_REFS


# ---------------------------------------------------------------------------- SetWeights / ReplaceUnits
def test_set_weights_and_transplant(caffe_model, act3a, unedited):
    spec = caffe_model.spec
    # wrong shape → EditError naming the field, the expected and the given shape
    with pytest.raises(EditError, match=r"field 'kernel'.*expected a kernel of shape \(32, 5, 5\).*got \(32, 3, 3\)"):
        EditPlan([SetWeights("mixed3b:330", torch.zeros(32, 3, 3))]).validate(spec)
    with pytest.raises(EditError, match=r"field 'weights'.*\(256, 1, 1\).*got \(32, 5, 5\)"):
        EditPlan([ReplaceUnits(["mixed3b:5"], [torch.zeros(32, 5, 5)])]).validate(spec)
    # a hand-built unit on the block input (reads="input"): pre = K ⋆ x + b, exactly
    g = torch.Generator().manual_seed(0)
    kernel = torch.randn(256, 5, 5, generator=g) * 0.01
    edited, record = EditPlan([SetWeights("mixed3b:330", kernel, bias=-1.5, reads="input")]).apply(caffe_model)
    got = _pre3b(edited, act3a)["mixed3b_pre_relu"]
    _close(got[:, 330:331], F.conv2d(act3a.double(), kernel.double()[None], torch.tensor([-1.5], dtype=torch.float64),
                                     padding=2))
    keep = _others([330])
    assert torch.equal(got[:, keep], unedited[:, keep])
    # transplant: ablate units, then put back the original units' weights → bitwise the original
    units = ["mixed3b:5", "mixed3b:200", *DST_REFS, "mixed3b:450"]
    ablated, _ = EditPlan([Ablate(units)]).apply(caffe_model)
    restored, _ = EditPlan([ReplaceUnits.from_model(caffe_model, units)]).apply(ablated)
    assert _hashes(restored) == _hashes(caffe_model)
    # transplant of linearised units: the same linear path as Linearize
    lin, _ = EditPlan([Linearize("mixed3b_5x5", DST_REFS)]).apply(caffe_model)
    moved, _ = EditPlan([ReplaceUnits.from_model(caffe_model, DST_REFS, reads="input")]).apply(caffe_model)
    assert _hashes(moved) == _hashes(lin)


# ---------------------------------------------------------------------------- (c) undo, save/load
def test_undo_removes_structure_bitwise(caffe_model, images, act3a, src10, tmp_path):
    src_a = [f"mixed3a:{s}" for s in src10[:5]]
    src_b = [f"mixed3a:{s}" for s in src10[5:]]
    plan = EditPlan([
        PrunePathway(src=src_a, dst=DST_REFS, via="5x5"),
        PrunePathway(src=src_b, dst=DST_REFS[1:]),  # the same dst again: copies of copies
        Linearize("mixed3b_5x5", ["mixed3b:400"]),
        Scale(src=src_a, dst=["mixed3b:200", "mixed3b:5"], factor=2.0, sign="positive"),
        SetWeights("mixed3b:401", torch.ones(256, 5, 5) * 1e-3, reads="input"),
        Ablate("mixed3b:402"),
    ], name="structural")
    before = _hashes(caffe_model)
    edited, record = plan.apply(caffe_model)
    assert _hashes(caffe_model) == before
    assert set(record.added_channels) == {"mixed3b_5x5_bottleneck", "mixed3b_3x3_bottleneck"}
    # two stacked prunes on the same dst = one prune of both sources
    got = _pre3b(edited, act3a)["mixed3b_pre_relu"]
    blk = caffe_model.mixed3b
    a0 = act3a.clone()
    a0[:, src10] = 0
    with torch.no_grad():
        ref = blk.b5x5.conv(blk.b5x5_bottleneck(a0))[:, LOC[1:]]
    _close(got[:, DST[1:]], ref)
    # undo: the original weights, shapes and module types
    restored = record.undo(edited)
    assert _hashes(restored) == _hashes(caffe_model)
    assert restored.structure() == {} and len(restored.mixed3b.linear_paths) == 0
    for conv in ("3x3_bottleneck", "3x3", "5x5_bottleneck", "5x5"):
        assert type(restored.mixed3b.unit(conv).conv) is nn.Conv2d
    assert not hasattr(restored, "edit_plan")
    assert torch.equal(_pre3b(restored, act3a)["mixed3b_pre_relu"], _pre3b(caffe_model, act3a)["mixed3b_pre_relu"])
    with pytest.raises(EditError, match="cannot undo"):
        record.undo(caffe_model)
    # save / load round trip of the widened model: bitwise outputs, plan embedded
    path = save_edited(edited, tmp_path / "edited.safetensors")
    loaded = load_edited(path)
    assert _hashes(loaded) == _hashes(edited)
    assert loaded.structure() == edited.structure() != {}
    assert loaded.edit_plan == edited.edit_plan == record.plan and loaded.edit_history == edited.edit_history
    x = images[:2]
    with torch.no_grad():
        assert torch.equal(loaded(x), edited(x))
    # and the loaded model still undoes with the record
    assert _hashes(record.undo(loaded)) == _hashes(caffe_model)


def test_pathway_validation(caffe_model):
    spec = caffe_model.spec
    with pytest.raises(EditError, match=r"field 'src'.*not a channel of mixed3a, the input of mixed3b"):
        EditPlan([PrunePathway(src="conv2d2:1", dst="mixed3b:330")]).validate(spec)
    with pytest.raises(EditError, match="field 'dst'.*one inception block"):
        EditPlan([PrunePathway(src="mixed3a:1", dst="mixed3b:330,mixed4a:1")]).validate(spec)
    with pytest.raises(EditError, match="field 'via'.*no dst unit is in the 1x1 branch"):
        EditPlan([PrunePathway(src="mixed3a:1", dst="mixed3b:330", via="1x1")]).validate(spec)
    with pytest.raises(EditError, match=r"field 'dst'.*mixed3b has units 0..479"):
        EditPlan([PrunePathway(src="mixed3a:1", dst="mixed3b:480")]).validate(spec)
    # src given as a branch unit of the input layer: mixed3a_5x5:0 is mixed3a:192
    assert PrunePathway(src="mixed3a_5x5:0", dst="mixed3b:5")._resolved(spec)[1] == [192]
