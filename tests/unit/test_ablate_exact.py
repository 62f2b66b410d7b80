"""Ablate (edits.ablate) on random weights, checked against a plain forward pass of the unedited
model: zero and mean ablation make the units' channels exactly the constant and leave every other
channel bitwise unchanged; ``unit_means`` equals the mean over images and positions of one
unbatched forward pass; the compiled ops, the resample interventions, the serialised form and every
rejection's message are pinned (mutation testing, issue 14; see docs/mutation.md)."""

from __future__ import annotations

import pytest
import torch
from random_models import random_inception

from circuits.catalog import load_catalog
from circuits.model import InceptionV1
from circuits.spec import get_spec
from edits import Ablate, EditError, EditPlan
from edits.ablate import unit_means

SPEC = get_spec("inceptionv1_caffe")
# mixed3b's branches (BVLC): 1x1 [0, 128), 3x3 [128, 320), 5x5 [320, 416), pool_reduce [416, 480)
UNITS_3B = [5, 200, 379, 450]


@pytest.fixture(scope="module")
def model():
    return random_inception(SPEC)


def _images(n: int, size: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _run(model, x, layers):
    with torch.no_grad():
        return model.run(x, layers)


@pytest.mark.parametrize("mode, means", [("zero", None), ("mean", [0.5, 2.0, 0.0, 3.25])])
def test_ablated_units_are_the_constant_and_every_other_unit_is_unchanged(model, mode, means):
    x = _images(2)
    before_w = {k: v.clone() for k, v in model.state_dict().items()}
    edited, _ = EditPlan([Ablate([f"3b:{u}" for u in UNITS_3B], mode=mode, means=means)]).apply(model)
    before, after = _run(model, x, ["mixed3b_pre_relu", "mixed3b"]), _run(edited, x, ["mixed3b_pre_relu", "mixed3b"])
    values = [0.0] * 4 if means is None else means
    for name in ("mixed3b_pre_relu", "mixed3b"):
        for u, v in zip(UNITS_3B, values):
            assert torch.equal(after[name][:, u], torch.full_like(after[name][:, u], v)), (name, u)
        others = [c for c in range(480) if c not in UNITS_3B]
        assert torch.equal(after[name][:, others], before[name][:, others])
    assert not torch.equal(before["mixed3b"][:, UNITS_3B], after["mixed3b"][:, UNITS_3B])
    conv = edited.block("mixed3b").unit("5x5").conv  # mixed3b:379 = mixed3b_5x5[59]
    assert torch.equal(conv.weight[59], torch.zeros(32, 5, 5)) and conv.bias[59].item() == values[2]
    orig = model.block("mixed3b").unit("5x5").conv
    rows = [r for r in range(96) if r != 59]
    assert torch.equal(conv.weight[rows], orig.weight[rows]) and torch.equal(conv.bias[rows], orig.bias[rows])
    for k, v in model.state_dict().items():  # the caller's model is never modified
        assert torch.equal(v, before_w[k]), k


def test_zeroing_a_mixed3a_unit_zeroes_its_channel(model):
    x = _images(1)
    edited, _ = EditPlan([Ablate("3a:7")]).apply(model)
    before, after = _run(model, x, ["mixed3a"]), _run(edited, x, ["mixed3a"])
    assert torch.equal(after["mixed3a"][:, 7], torch.zeros_like(after["mixed3a"][:, 7]))
    assert torch.equal(after["mixed3a"][:, 8:], before["mixed3a"][:, 8:])


def test_unit_means_equal_the_mean_of_one_unbatched_forward_pass(model):
    x = _images(5)
    units = ["3b:379", "3a:7", "mixed3b:5", "mixed3b_5x5_bottleneck:3", "3a:0"]
    acts = _run(model, x, ["mixed3b", "mixed3a", "mixed3b_5x5_bottleneck"])
    where = [("mixed3b", 379), ("mixed3a", 7), ("mixed3b", 5), ("mixed3b_5x5_bottleneck", 3), ("mixed3a", 0)]
    expect = [acts[layer][:, c].double().mean().float().item() for layer, c in where]
    assert min(expect) > 0
    for bs in (2, None):  # 3 passes of 2, 2, 1 images; one pass of the default size (32)
        got = unit_means(model, units, x, batch_size=bs) if bs else unit_means(model, units, x)
        assert len(got) == 5 and all(type(v) is float for v in got)
        torch.testing.assert_close(torch.tensor(got), torch.tensor(expect), rtol=1e-5, atol=0)
    # EditPlan.apply measures them, stores them, and the ablated channel holds that constant
    edited, record = EditPlan([Ablate(["3b:379", "3b:5"], mode="mean")]).apply(model, reference=x)
    stored = record.plan["edits"][0]["means"]
    torch.testing.assert_close(torch.tensor(stored), torch.tensor([expect[0], expect[2]]), rtol=1e-5, atol=0)
    out = _run(edited, x[:1], ["mixed3b"])["mixed3b"]
    assert torch.equal(out[:, 379], torch.full_like(out[:, 379], stored[0]))
    with pytest.raises(EditError) as e:
        unit_means(model, units, x[:, :2])
    assert e.value.field == "reference" and "shape (5, 2, 32, 32)" in str(e.value)


def test_compiled_ops_name_each_units_convolution_row():
    m = InceptionV1(SPEC)
    ops = Ablate(["3b:5", "3b:200", "3a:7", "3b:450"]).compile(m)
    assert [(op.key, op.index, op.note) for op in ops] == [
        ("mixed3b.b1x1.conv.weight", (5,), "zero mixed3b:5 (mixed3b_1x1[5])"),
        ("mixed3b.b1x1.conv.bias", (5,), "zero mixed3b:5 (mixed3b_1x1[5])"),
        ("mixed3b.b3x3.conv.weight", (72,), "zero mixed3b:200 (mixed3b_3x3[72])"),
        ("mixed3b.b3x3.conv.bias", (72,), "zero mixed3b:200 (mixed3b_3x3[72])"),
        ("mixed3a.b1x1.conv.weight", (7,), "zero mixed3a:7 (mixed3a_1x1[7])"),
        ("mixed3a.b1x1.conv.bias", (7,), "zero mixed3a:7 (mixed3a_1x1[7])"),
        ("mixed3b.bpool_reduce.conv.weight", (34,), "zero mixed3b:450 (mixed3b_pool_reduce[34])"),
        ("mixed3b.bpool_reduce.conv.bias", (34,), "zero mixed3b:450 (mixed3b_pool_reduce[34])"),
    ]
    ops = Ablate(["3b:5", "3b:200"], mode="mean", means=[0.5, 1]).compile(m)
    assert [op.note for op in ops] == [
        "mean-ablate mixed3b:5 (mixed3b_1x1[5]): weights 0", "mean-ablate mixed3b:5 (mixed3b_1x1[5]): bias 0.5",
        "mean-ablate mixed3b:200 (mixed3b_3x3[72]): weights 0", "mean-ablate mixed3b:200 (mixed3b_3x3[72]): bias 1",
    ]
    t = torch.ones(3)
    assert [op.transform(t).tolist() for op in ops] == [[0.0] * 3, [0.5] * 3, [0.0] * 3, [1.0] * 3]
    assert Ablate("3b:5", mode="resample").compile(m) == []
    assert Ablate("3b:5").interventions(m) == [] and Ablate("3b:5", mode="mean", means=[1]).interventions(m) == []
    assert Ablate("3b:5").claims(SPEC) == [(("mixed3b_1x1", 5), "mixed3b:5")]
    assert Ablate("3b:379").claims(SPEC) == [(("mixed3b_5x5", 59), "mixed3b:379")]


def test_resample_interventions_seed_and_serialised_forms():
    m = InceptionV1(SPEC)
    r = Ablate(["3b:5", "3b:7", "3a:1"], mode="resample")
    got = [(layer, fn.channels if hasattr(fn, "channels") else None, note) for layer, fn, note in r.interventions(m)]
    assert [(g[0], g[2]) for g in got] == [("mixed3b", "resample mixed3b:5, mixed3b:7 (seed 0)"),
                                           ("mixed3a", "resample mixed3a:1 (seed 0)")]
    assert [repr(fn) for _, fn, _ in r.interventions(m)] == ["resample_units([5, 7], seed=0, from batch)",
                                                              "resample_units([1], seed=0, from batch)"]
    assert Ablate("3b:5", mode="resample", seed=3).interventions(m)[0][2] == "resample mixed3b:5 (seed 3)"
    assert r.prepare(m).seed == 0 and r.seed is None
    assert Ablate("3b:5", mode="resample", seed=3).prepare(m).to_dict() == {
        "type": "Ablate", "units": ["mixed3b:5"], "mode": "resample", "seed": 3}
    assert Ablate("3b:5").prepare(m).seed is None and Ablate("3b:5").prepare(m) == Ablate("3b:5")
    assert Ablate(["3b:5", "3b:200"], mode="mean", means=[0.5, 1]).to_dict() == {
        "type": "Ablate", "units": ["mixed3b:5", "mixed3b:200"], "mode": "mean", "means": [0.5, 1.0]}
    assert Ablate("3b:5").to_dict() == {"type": "Ablate", "units": ["mixed3b:5"], "mode": "zero"}
    assert Ablate("3b:5", mode="mean").needs_reference() == "means"
    assert Ablate("3b:5", mode="mean", means=[1]).needs_reference() is None
    assert Ablate("3b:5").needs_reference() is None and Ablate("3b:5", mode="resample").needs_reference() is None
    with pytest.raises(EditError) as e:
        Ablate("3b:5", mode="mean").compile(m)
    assert e.value.field == "means" and str(e.value) == \
        "Ablate field 'means': mean ablation needs its means; EditPlan.apply measures them"
    with pytest.raises(EditError) as e:
        Ablate("3b:5", mode="mean").prepare(m)
    assert e.value.field == "means" and str(e.value) == (
        "Ablate field 'means': mode 'mean' needs the units' mean activations: pass reference images "
        "(EditPlan.apply(model, reference=images), CLI --reference DIR) or give 'means'")


def test_family_keys_resolve_through_the_checkpoints_catalog():
    fam = load_catalog(SPEC)["mixed3b/curves"]
    a = Ablate(["3b/curves", "3a:1"])
    assert a.units == ("mixed3b/curves", "mixed3a:1")
    assert [str(u) for u in a.unit_list(SPEC)] == [f"mixed3b:{i}" for i in fam.units] + ["mixed3a:1"]
    prepared = a.prepare(InceptionV1(SPEC))
    assert prepared.units == tuple(f"mixed3b:{i}" for i in fam.units) + ("mixed3a:1",)
    assert prepared.family_map == {"mixed3b/curves": fam.units}
    assert prepared.to_dict()["families"] == {"mixed3b/curves": list(fam.units)}
    # a key whose units are given expands from them, never from the catalog
    given = Ablate(["mixed3b/curves"], families={"mixed3b/curves": [2, 1]})
    assert given.units == ("mixed3b:2", "mixed3b:1") and given.families == (("mixed3b/curves", (2, 1)),)
    assert Ablate("3b:1").family_map == {} and Ablate("3b:1").families is None
    with pytest.raises(EditError) as e:
        a.unit_list()
    assert e.value.field == "units" and str(e.value) == \
        "Ablate field 'units': family 'mixed3b/curves' is resolved against a checkpoint; validate first"
    with pytest.raises(EditError) as e:
        Ablate("mixed3b/nothing").validate(SPEC)
    assert e.value.field == "units" and "nothing" in str(e.value)
    with pytest.raises(EditError) as e:
        Ablate(["3b:1", "3b:480"]).validate(SPEC)
    assert e.value.field == "units" and "mixed3b has units 0..479" in str(e.value)
    Ablate(["3b:0", "3b:479", "3a:255"]).validate(SPEC)


@pytest.mark.parametrize("kwargs, field, message", [
    (dict(seed=1), "seed", "a seed applies to mode 'resample' only, not 'zero'"),
    (dict(mode="resample", seed=-1), "seed", "must be an integer in [0, 2**63), got -1"),
    (dict(mode="resample", seed=2**63), "seed", f"must be an integer in [0, 2**63), got {2**63}"),
    (dict(mode="resample", seed=True), "seed", "must be an integer in [0, 2**63), got True"),
    (dict(mode="resample", seed=1.0), "seed", "must be an integer in [0, 2**63), got 1.0"),
    (dict(means=[1]), "means", "means apply to mode 'mean' only, not 'zero'"),
    (dict(mode="mean", means="1"), "means", "must be a list of numbers, one per unit; got '1'"),
    (dict(mode="mean", means={"a": 1}), "means", "must be a list of numbers, one per unit; got {'a': 1}"),
    (dict(mode="mean", means=1.0), "means", "must be a list of numbers, one per unit; got 1.0"),
    (dict(mode="mean", means=[1, 2]), "means", "2 values for 1 units"),
    (dict(mode="mean", means=[-1]), "means", "the mean of mixed3b:1 must be finite and ≥ 0 (a post-ReLU mean), got -1"),
    (dict(mode="mean", means=[float("inf")]), "means", "the mean of mixed3b:1 must be finite and ≥ 0 (a post-ReLU mean), got inf"),
    (dict(mode="mean", means=[float("nan")]), "means", "the mean of mixed3b:1 must be finite and ≥ 0 (a post-ReLU mean), got nan"),
    (dict(mode="mean", means=[10**400]), "means", f"the mean of mixed3b:1 must be finite and ≥ 0 (a post-ReLU mean), got {10**400}"),
    (dict(mode="mean", means=[3.5e38]), "means", "the mean of mixed3b:1 must be finite and ≥ 0 (a post-ReLU mean), got 3.5e+38"),
    (dict(mode="mean", means=[True]), "means", "the mean of mixed3b:1 must be a number, got True"),
    (dict(mode="mean", means=["1"]), "means", "the mean of mixed3b:1 must be a number, got '1'"),
    (dict(units="mixed3b/curves", mode="mean", means=[1]), "means",
     "means need a resolved unit list (no family keys in 'units')"),
    (dict(families={"mixed3b/curves": [2]}), "families", "'mixed3b/curves' lists mixed3b:2, which is not among the units"),
    (dict(families="x"), "families",
     "must map family keys to unit indices, e.g. {'mixed3b/curves': [379, 385]}; got 'x'"),
    (dict(families=3), "families", "must map family keys to unit indices, e.g. {'mixed3b/curves': [379, 385]}; got 3"),
    (dict(families=[("a",)]), "families", "must map family keys to unit indices; got the entry ('a',)"),
    (dict(families=["ab"]), "families", "must map family keys to unit indices; got the entry 'ab'"),
    (dict(families={1: [1]}), "families", "family keys are strings such as 'mixed3b/curves'; got 1"),
    (dict(families={"mixed3b/curves": "1"}), "families", "'mixed3b/curves' must list unit indices, got '1'"),
    (dict(families={"mixed3b/curves": 1}), "families", "'mixed3b/curves' must list unit indices, got 1"),
    (dict(families={"mixed3b/curves": {1: 1}}), "families", "'mixed3b/curves' must list unit indices, got {1: 1}"),
    (dict(families={"mixed3b/curves": []}), "families", "'mixed3b/curves' lists no unit"),
    (dict(families={"mixed3b/curves": [-1]}), "families", "a unit index of 'mixed3b/curves' must be ≥ 0, got -1"),
    (dict(families={"mixed3b/curves": [1.0]}), "families",
     "a unit index of 'mixed3b/curves' must be an integer, got 1.0"),
    (dict(families={"mixed3b/curves": [True]}), "families",
     "a unit index of 'mixed3b/curves' must be an integer, got True"),
    (dict(families=[("mixed3b/curves", [1]), ("mixed3b/curves", [2])]), "families",
     "'mixed3b/curves' is given twice with different units"),
    (dict(units=[]), "units", "names no unit; give at least one, e.g. '3b:379'"),
    (dict(mode="max"), "mode", "'max' is not a supported ablation mode; valid choices: ['zero', 'mean', 'resample']"),
    (dict(mode=None), "mode", "None is not a supported ablation mode"),
])
def test_rejections_name_the_field_and_the_reason(kwargs, field, message):
    kwargs = {"units": "3b:1", **kwargs}
    with pytest.raises(EditError) as e:
        Ablate(**kwargs)
    text, expect = str(e.value), f"Ablate field '{field}': {message}"
    assert e.value.field == field and (text == expect or text.startswith(expect + "; valid choices: "))


def test_accepted_edge_values():
    assert Ablate("3b:1", mode="resample", seed=0).seed == 0
    assert Ablate("3b:1", mode="resample", seed=2**63 - 1).seed == 2**63 - 1
    a = Ablate(["3b:1", "3b:2"], mode="mean", means=(0, 3))
    assert a.means == (0.0, 3.0) and all(type(v) is float for v in a.means)
    assert Ablate("3b:1", mode="mean", means=[3.4e38]).means == (3.4e38,)
    same = Ablate("3b:1", families=[("mixed3b/curves", [1]), ("mixed3b/curves", [1])])
    assert same.families == (("mixed3b/curves", (1,)),)
    assert Ablate("3b:1", families={"3b/curves": [1]}).families == (("mixed3b/curves", (1,)),)
    assert Ablate("3b:1", families=[["mixed3b/curves", (1,)]]).families == (("mixed3b/curves", (1,)),)


def test_unit_means_batches_and_sums_in_float64_exactly(model):
    x = _images(5, seed=3)
    units = ["3b:379", "3a:7", "3b:5", "3a:0", "3b:200"]  # three of one layer: each its own value
    per_layer = {}
    for a, b in ((0, 2), (2, 4), (4, 5)):  # batch_size=2: the same passes the function makes
        acts = _run(model, x[a:b], ["mixed3a", "mixed3b"])
        for name, v in acts.items():
            per_layer[name] = per_layer.get(name, 0) + v.double().sum(dim=(0, 2, 3))
    n = 5 * acts["mixed3b"].shape[2] * acts["mixed3b"].shape[3]
    n3a = 5 * acts["mixed3a"].shape[2] * acts["mixed3a"].shape[3]
    expect = [(per_layer["mixed3b"][379] / n).float().item(), (per_layer["mixed3a"][7] / n3a).float().item(),
              (per_layer["mixed3b"][5] / n).float().item(), (per_layer["mixed3a"][0] / n3a).float().item(),
              (per_layer["mixed3b"][200] / n).float().item()]
    assert len(set(expect)) == 5
    assert unit_means(model, units, x, batch_size=2) == expect
    # the default batch size is 32 images: 33 images take two passes (32 + 1)
    seen: list[int] = []
    handle = model.conv2d0.register_forward_hook(lambda mod, inp, out: seen.append(out.shape[0]))
    try:
        unit_means(model, ["3a:0"], _images(33, size=16))
    finally:
        handle.remove()
    assert seen == [32, 1]


def test_a_family_may_list_unit_0():
    assert Ablate("3b:0", families={"mixed3b/curves": [0]}).families == (("mixed3b/curves", (0,)),)


def test_unit_means_of_a_resampling_model_run_whole_resample_groups(model):
    from edits.interventions import resample_groups

    x = _images(5, seed=4)
    edited, _ = EditPlan([Ablate(["3a:1", "3a:3", "3a:8"], mode="resample")]).apply(model)
    with torch.no_grad(), resample_groups(torch.zeros(5, dtype=torch.long)):  # 5 images: one group of 5
        acts = edited.run(x, ["mixed3b"])["mixed3b"]
    expect = [acts[:, c].double().mean().float().item() for c in (5, 379)]
    assert unit_means(edited, ["3b:5", "3b:379"], x, batch_size=2) == expect
    assert unit_means(edited, ["3b:5", "3b:379"], x, batch_size=5) == expect


def test_unit_means_of_float64_images_are_those_of_float32_images(model):
    x = _images(2, seed=5)
    assert unit_means(model, ["3b:379", "3a:7"], x.double()) == unit_means(model, ["3b:379", "3a:7"], x)


def test_resampling_means_do_not_depend_on_the_batch_size_across_groups(model):
    x = _images(10, size=16, seed=6)  # resample groups of 8: images 0…7 and 8, 9
    edited, _ = EditPlan([Ablate(["3a:1", "3a:3"], mode="resample")]).apply(model)
    assert unit_means(edited, ["3b:5"], x, batch_size=8) == unit_means(edited, ["3b:5"], x, batch_size=100)


def test_compile_resolves_a_family_key_through_the_models_spec():
    fam = load_catalog(SPEC)["mixed3b/curves"]
    ops = Ablate("mixed3b/curves").compile(InceptionV1(SPEC))
    assert len(ops) == 2 * len(fam.units) and ops[0].note.startswith(f"zero mixed3b:{fam.units[0]} (")


def test_validate_claims_and_interventions_resolve_family_keys():
    fam = load_catalog(SPEC)["mixed3b/curves"]
    Ablate("mixed3b/curves").validate(SPEC)
    assert [c[1] for c in Ablate("mixed3b/curves").claims(SPEC)] == [f"mixed3b:{i}" for i in fam.units]
    m = InceptionV1(SPEC)
    (layer, fn, note), = Ablate("mixed3b/curves", mode="resample", seed=3).interventions(m)
    assert layer == "mixed3b" and note == "resample " + ", ".join(f"mixed3b:{i}" for i in fam.units) + " (seed 3)"
    assert repr(fn).endswith("seed=3, from batch)")


def test_repeated_units_are_kept_and_the_float32_maximum_is_a_valid_mean():
    assert Ablate(["3b:1", "mixed3b:1"]).units == ("mixed3b:1", "mixed3b:1")
    big = float(torch.finfo(torch.float32).max)
    assert Ablate("3b:1", mode="mean", means=[big]).means == (big,)
