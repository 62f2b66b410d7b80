"""Issue 13, kind 6 (no real data): resample donors depend on dataset indices, never on batching;
and kind 1's reserved baseline name and unique plan file names in sweeps."""

import pandas as pd
import pytest
import torch

from circuits.model import InceptionV1
from edits import Ablate, EditPlan
from edits.interventions import RESAMPLE_GROUP, ResampleUnits, resample_groups
from studies.measure.classify import _forward_batches
from studies.run.shards import group_span
from studies.sweep_study import SweepConfig, build_plans, plan_file_name


def _loader(n: int, batch: int, fail=()):
    """What the evaluation's DataLoader yields: (images, sample indices, failed loads)."""
    for s in range(0, n, batch):
        ok = [i for i in range(s, min(s + batch, n)) if i not in fail]
        x = torch.arange(len(ok), dtype=torch.float32).view(-1, 1) + torch.tensor(ok, dtype=torch.float32).view(-1, 1)
        yield x, torch.tensor(ok, dtype=torch.long), [(i, "broken") for i in range(s, min(s + batch, n)) if i in fail]


def _passes(n, batch, first=0, fail=()):
    return [(idx.tolist(), g.tolist()) for _, idx, g, _ in _forward_batches(_loader(n, batch, fail), True, first)
            if len(idx)]


@pytest.mark.parametrize("n", [1, 2, 9, 16, 17, 23])
def test_forward_passes_are_the_resample_groups_whatever_the_batch_size(n):
    ref = _passes(n, 1)
    for b in (2, 3, 8, 64):
        assert _passes(n, b) == ref
    flat = [i for idx, _ in ref for i in idx]
    assert flat == list(range(n))
    for idx, g in ref:  # one group per pass, numbered by dataset index; a lone last image joins the one before
        assert len(set(g)) == 1 and (len(idx) >= 2 or n == 1)
        assert g[0] == idx[0] // RESAMPLE_GROUP
    assert _passes(9, 4, first=16) == [(list(range(9)), [2] * 9)]  # a shard starting at dataset index 16
    # an image whose group-mates failed to load joins a neighbouring group, for every batch size
    assert _passes(16, 5, fail=range(9, 16)) == _passes(16, 16, fail=range(9, 16)) == [(list(range(9)), [0] * 9)]


def test_donors_come_from_the_group_and_depend_on_dataset_index_only():
    fn = ResampleUnits([0], seed=5)
    a = torch.arange(18, dtype=torch.float32).view(18, 1, 1, 1).repeat(1, 2, 1, 1)
    with resample_groups([0] * 8 + [1] * 10):
        full = fn(a)[:, 0, 0, 0]
    with resample_groups([1] * 10):
        part = fn(a[8:])[:, 0, 0, 0]
    assert torch.equal(full[8:], part)  # group 1 alone gives the same donors
    assert all(full[i] != i and (full[i] < 8) == (i < 8) for i in range(18))  # never itself, within its group
    assert torch.equal(fn(a)[:, 1], a[:, 1])  # other channels untouched
    with resample_groups([0, 1, 1]), pytest.raises(ValueError, match="at least 2 images per group"):
        fn(a[:3])


def test_sweep_shards_widen_to_whole_groups():
    assert group_span(8, 9, 9) == (0, 9) and group_span(0, 4, 9) == (0, 9)
    assert group_span(12, 16, 20) == (8, 16) and group_span(16, 17, 17) == (8, 17) and group_span(0, 8, 16) == (0, 8)


@pytest.fixture(scope="module")
def model():
    return InceptionV1("inceptionv1_caffe")


def _files(tmp_path, *names):
    out = []
    for n in names:
        p = tmp_path / n
        EditPlan([Ablate("3b:379")]).save(p)
        out.append(str(p))
    return out


@pytest.mark.parametrize("names, single, match", [
    (["unedited.json"], None, "reserved for the unedited baseline"),
    (["Unedited.yaml"], None, "reserved for the unedited baseline"),
    (["a:b.json", "a_b.json"], None, "collides with 'a:b'"),
    (["x.json", "sub/x.yaml"], None, "collides with 'x'"),
    (["ablate-mixed3b_9.json"], "mixed3b/curves", "ablate-mixed3b:9.*collides"),
])
def test_sweep_plan_names_never_replace_each_other(model, tmp_path, names, single, match):
    (tmp_path / "sub").mkdir()
    cfg = SweepConfig(images="x", plans=_files(tmp_path, *names), single_unit_ablations=single)
    with pytest.raises(ValueError, match=match):
        build_plans(cfg, model)


def test_distinct_names_are_kept(model, tmp_path):
    cfg = SweepConfig(images="x", plans=_files(tmp_path, "a.json", "b.json"))
    assert list(build_plans(cfg, model)) == ["a", "b"]
    assert plan_file_name("ablate-mixed3b:379") == "ablate-mixed3b_379.json"
    assert plan_file_name("../../etc/x") == ".._.._etc_x.json"


def test_stimulus_and_reference_loops_never_depend_on_the_batch_size(model):
    from edits.ablate import unit_means
    from studies.measure.stimuli import curves, orientation_grid
    from studies.measure.tuning import measure

    units = [f"mixed3b:{i}" for i in range(32)]
    edited = EditPlan([Ablate(units, mode="resample", seed=2)]).apply(model)[0]
    stim = curves(orientation_grid(40), [40.0])
    assert len(stim) == 9  # 8 + 1: the last batch of 8 holds one stimulus
    r = {b: measure(edited, units, stim, pre_relu=False, batch_size=b)["response"].to_numpy() for b in (1, 2, 8)}
    assert (r[1] == r[2]).all() and (r[1] == r[8]).all()
    plain = measure(model, units, stim, pre_relu=False, batch_size=8)["response"].to_numpy()
    assert not (plain == r[1]).all()  # it did resample
    ref = torch.rand(9, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    assert unit_means(edited, ["mixed4a:0"], ref, batch_size=1) == unit_means(edited, ["mixed4a:0"], ref, batch_size=8)


def test_stimulus_sweeps_never_depend_on_the_stimulus_batch(model, tmp_path):
    from studies.measure.stimuli import curves, orientation_grid
    from studies.run.sweep import run_sweep

    units = [f"mixed3b:{i}" for i in range(32)]
    plans = {"r": EditPlan([Ablate(units, mode="resample", seed=2)])}
    stim = curves(orientation_grid(40), [40.0])  # 9 stimuli
    runs = [run_sweep(plans, None, model=model, stimuli=stim, units=units, pre_relu=False, stimulus_batch=s,
                      cache_dir=tmp_path / str(s)).tuning for s in (6, 512)]  # batches of 6 + 3, or one of 9
    pd.testing.assert_frame_equal(runs[0], runs[1], check_exact=True)
