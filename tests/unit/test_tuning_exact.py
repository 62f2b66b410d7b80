"""The tuning measures that call the network (``best_stimulus`` and ``combing_index`` without a
given table, ``angle_vs_curve``, ``reference_stats``) on a stand-in ``measure`` whose responses
are known functions of the stimulus, so every expected value is written out by hand: which
stimuli are measured (defaults pinned), which arguments reach ``measure``, the rows and ratios
returned, and validation before any compute (mutation testing, issue 14; docs/mutation.md).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from circuits.spec import get_spec
from circuits.units import resolve_units
from studies.measure import stimuli as S
from studies.measure import tuning as T

SPEC = get_spec("inceptionv1_caffe")
MODEL = SimpleNamespace(spec=SPEC)


class FakeMeasure:
    """Stands in for :func:`studies.measure.tuning.measure`: ``response(unit, meta row)`` per
    unit and stimulus, in ``measure``'s table layout; records each call's stimuli and keywords."""

    def __init__(self, response):
        self.response = response
        self.calls: list[tuple[pd.DataFrame, dict]] = []

    def __call__(self, model, units, stimuli, **kwargs):
        units = resolve_units(units, model.spec)
        self.calls.append((stimuli.meta.copy(), kwargs))
        frames = []
        for u in units:
            df = stimuli.meta.copy()
            df.insert(0, "index", u.index)
            df.insert(0, "layer", u.layer)
            df.insert(0, "unit", str(u))
            df["response"] = [float(self.response(str(u), r)) for r in df.itertuples()]
            frames.append(df)
        return pd.concat(frames, ignore_index=True)


def _fake(monkeypatch, response) -> FakeMeasure:
    fake = FakeMeasure(response)
    monkeypatch.setattr(T, "measure", fake)
    return fake


# ----------------------------------------------------------------------------- best_stimulus
def test_best_stimulus_without_a_table_runs_the_default_joint_sweep_then_the_radii(monkeypatch):
    """No ``tuning``: a joint sweep of curves (10° grid, the default radii, 2 px strokes, no
    lines), then curves at each unit's vector-sum orientation. Unit 1 is tuned to 40° (a von
    Mises curve, symmetric about 40° on the grid) and prefers radius 27; unit 2 never responds
    (NaN orientation, measured at 0°, where its least negative radius is 8)."""
    def response(u, row):
        if u == "mixed3b:1":
            return math.exp(2 * math.cos(math.radians(row.orientation - 40.0))) * (1 + (row.radius == 27.0))
        return -row.radius - row.orientation

    fake = _fake(monkeypatch, response)
    b = T.best_stimulus(MODEL, ["3b:1", "mixed3b:2"], batch_size=7)
    assert len(fake.calls) == 2 and all(kw == {"batch_size": 7} for _, kw in fake.calls)
    sweep, at_best = fake.calls[0][0], fake.calls[1][0]
    assert sorted(set(sweep["orientation"])) == [float(o) for o in range(0, 360, 10)]
    assert len(sweep) == 36 * len(S.DEFAULT_RADII) and set(sweep["kind"]) == {"curve"}
    assert sweep["radius"].tolist()[:9] == list(S.DEFAULT_RADII) and set(sweep["stroke_width"]) == {2.0}
    assert at_best["orientation"].tolist()[:9] == [0.0] * 9  # sorted: the NaN unit's 0° first
    assert at_best["orientation"].tolist()[9:] == pytest.approx([40.0] * 9, abs=1e-9)
    assert at_best["radius"].tolist() == list(S.DEFAULT_RADII) * 2 and set(at_best["stroke_width"]) == {2.0}
    assert list(b.columns) == ["unit", "layer", "index", "preferred_orientation", "best_radius", "best_response",
                               "selectivity"]
    one, two = b.iloc[0], b.iloc[1]
    assert (one["unit"], one["layer"], one["index"]) == ("mixed3b:1", "mixed3b", 1)
    assert one["preferred_orientation"] == pytest.approx(40.0, abs=1e-9)
    assert one["best_radius"] == 27.0 and one["best_response"] == pytest.approx(2 * math.e ** 2, rel=1e-12)
    assert 0.6 < one["selectivity"] < 0.8  # I1(2)/I0(2) = 0.698 (sampled at 10°: exact to 1e-6)
    assert one["selectivity"] == pytest.approx(0.697775, abs=1e-6)
    assert (two["unit"], two["index"]) == ("mixed3b:2", 2) and math.isnan(two["preferred_orientation"])
    assert two["best_radius"] == 8.0 and two["best_response"] == -8.0 and two["selectivity"] == 0.0


def test_best_stimulus_passes_its_grid_and_stroke_to_the_sweep(monkeypatch):
    fake = _fake(monkeypatch, lambda u, row: (row.orientation == 90.0) * row.radius)
    b = T.best_stimulus(MODEL, "mixed3b:5", orientation_step=90.0, radii=(10.0, 30.0), stroke_width=3.5)
    sweep, at_best = fake.calls[0][0], fake.calls[1][0]
    assert sweep["orientation"].tolist() == [0.0, 0.0, 90.0, 90.0, 180.0, 180.0, 270.0, 270.0]
    assert sweep["radius"].tolist() == [10.0, 30.0] * 4 and set(sweep["stroke_width"]) == {3.5}
    assert at_best["orientation"].tolist() == [90.0, 90.0] and at_best["radius"].tolist() == [10.0, 30.0]
    assert set(at_best["stroke_width"]) == {3.5} and fake.calls[0][1] == {}
    assert b["preferred_orientation"].tolist() == [90.0] and b["best_radius"].tolist() == [30.0]
    assert b["selectivity"].tolist() == [1.0] and b["best_response"].tolist() == [30.0]


def test_best_stimulus_names_the_units_missing_from_the_table(monkeypatch):
    fake = _fake(monkeypatch, lambda u, row: 1.0)
    tuning = FakeMeasure(lambda u, row: 1.0)(MODEL, "mixed3b:1", S.curves([0.0, 90.0], [10.0]))
    units = [f"mixed3b:{i}" for i in range(1, 9)]
    with pytest.raises(ValueError) as e:
        T.best_stimulus(MODEL, units, tuning=tuning)
    assert e.value.args[0] == "tuning lacks units ['mixed3b:2', 'mixed3b:3', 'mixed3b:4', 'mixed3b:5', 'mixed3b:6']"
    assert fake.calls == []


# ----------------------------------------------------------------------------- combing_index
def _best(rows):
    return pd.DataFrame([dict(unit=u, layer=u.split(":")[0], index=int(u.split(":")[1]), preferred_orientation=o,
                              best_radius=r, best_response=1.0, selectivity=0.5) for u, o, r in rows])


def test_combing_index_measures_the_default_sides_spacing_length_and_stroke(monkeypatch):
    fake = _fake(monkeypatch, lambda u, row: {"curve": 2.0, "combed_curve": 3.0, "combing": 1.0}[row.kind])
    c = T.combing_index(MODEL, "mixed3b:1", best=_best([("mixed3b:1", 30.0, 20.0)]))
    assert len(fake.calls) == 1 and fake.calls[0][1] == {}
    meta = fake.calls[0][0]
    sides = ["inward", "outward", "both"]
    assert meta["kind"].tolist() == ["curve"] + ["combed_curve"] * 3 + ["combing"] * 3
    assert meta["side"].tolist()[1:] == sides * 2
    assert set(meta["spacing_px"].dropna()) == {8.0} and set(meta["length_px"].dropna()) == {8.0}
    assert set(meta["stroke_width"]) == {2.0} and set(meta["orientation"]) == {30.0} and set(meta["radius"]) == {20.0}
    assert c["side"].tolist() == sides and c["combing_index"].tolist() == [1.5] * 3
    assert c["teeth_index"].tolist() == [0.5] * 3 and list(c.index) == [0, 1, 2]
    assert list(c.columns) == ["unit", "layer", "index", "side", "orientation", "radius", "plain", "combed", "teeth",
                               "combing_index", "teeth_index"]


def test_combing_index_without_best_finds_it_with_the_same_stroke_and_table(monkeypatch):
    """``best=None``: :func:`best_stimulus` on the given ``tuning`` table (no sweep), at the
    combing's stroke width, with the same keywords; then each unit's own stimuli only."""
    tuning = FakeMeasure(lambda u, row: 1.0 + (row.orientation == {"mixed3b:1": 90.0, "mixed3b:2": 180.0}[u]))(
        MODEL, ["mixed3b:1", "mixed3b:2"], S.curves([0.0, 90.0, 180.0, 270.0], [10.0]))

    def response(u, row):
        own = {"mixed3b:1": 90.0, "mixed3b:2": 180.0}[u]
        if row.kind == "curve":
            return row.radius if np.isclose(row.orientation, own) else -1.0
        return {"inward": 1.0, "outward": 2.0}[row.side] * (3.0 if row.kind == "combed_curve" else 0.5)

    fake = _fake(monkeypatch, response)
    c = T.combing_index(MODEL, ["mixed3b:1", "mixed3b:2"], sides=("outward", "inward"), spacing_px=5.0,
                        length_px=6.0, stroke_width=3.0, tuning=tuning, radii=(10.0, 40.0), batch_size=3)
    # radii go to best_stimulus only (measure takes no radii: it used to receive them and fail)
    assert len(fake.calls) == 2 and [kw for _, kw in fake.calls] == [{"batch_size": 3}, {"batch_size": 3}]
    at_best, per_unit = fake.calls[0][0], fake.calls[1][0]
    assert at_best["orientation"].tolist() == pytest.approx([90.0, 90.0, 180.0, 180.0], abs=1e-9)
    assert at_best["radius"].tolist() == [10.0, 40.0] * 2
    assert set(at_best["stroke_width"]) == {3.0} and set(per_unit["stroke_width"]) == {3.0}
    assert set(per_unit["spacing_px"].dropna()) == {5.0} and set(per_unit["length_px"].dropna()) == {6.0}
    assert c["unit"].tolist() == ["mixed3b:1"] * 2 + ["mixed3b:2"] * 2
    assert c["side"].tolist() == ["outward", "inward"] * 2 and c["radius"].tolist() == [40.0] * 4
    assert c["orientation"].tolist() == pytest.approx([90.0, 90.0, 180.0, 180.0], abs=1e-9)
    assert c["plain"].tolist() == [40.0] * 4 and c["combed"].tolist() == [6.0, 3.0] * 2
    assert c["combing_index"].tolist() == [0.15, 0.075] * 2 and c["teeth_index"].tolist() == [0.025, 0.0125] * 2


def test_combing_sides_are_checked_before_any_measurement(monkeypatch):
    fake = _fake(monkeypatch, lambda u, row: 1.0)
    best = _best([("mixed3b:1", 0.0, 10.0)])
    for kwargs, message in (({"sides": ("inward", "sideways")}, "side must be one of inward, outward, both; got 'sideways'"),
                            ({"spacing_px": 0.0}, "spacing_px"), ({"length_px": -1.0}, "length_px"),
                            ({"stroke_width": 0.0}, "stroke_width")):
        with pytest.raises(S.StimulusError) as e:
            T.combing_index(MODEL, "mixed3b:1", best=best, **kwargs)
        assert message in e.value.args[0]
    assert fake.calls == []


# ----------------------------------------------------------------------------- angle_vs_curve
def _angle_response(u, row):
    if row.kind == "curve":
        return row.radius / 4 if u == "mixed3b:1" else -2.0
    return row.opening_degrees / 45 + row.corner_radius / 8


def test_angle_vs_curve_measures_the_default_series_at_the_preferred_orientation(monkeypatch):
    """Unit 1 (preferred 30°, best radius 20): curves of every non-zero corner radius and 20,
    sorted (4, 8, 16, 20, 32, 64 px: response r/4, so the best radius gives 5), then the angles
    opening × corner radius (response opening/45 + r/8). Unit 2 (NaN orientation → 0°) has a
    negative best curve: every ratio is NaN."""
    fake = _fake(monkeypatch, _angle_response)
    best = _best([("mixed3b:1", 30.0, 20.0), ("mixed3b:2", float("nan"), 8.0)])
    av = T.angle_vs_curve(MODEL, ["mixed3b:1", "mixed3b:2"], best=best)
    assert len(fake.calls) == 1 and fake.calls[0][1] == {}
    assert list(av.columns) == ["unit", "layer", "index", "kind", "orientation", "opening_degrees", "radius",
                                "response", "ratio_to_best_curve"]
    assert set(fake.calls[0][0]["stroke_width"]) == {2.0}
    one = av[av["unit"] == "mixed3b:1"]
    radii = [4.0, 8.0, 16.0, 20.0, 32.0, 64.0]
    corners = [0.0, 4.0, 8.0, 16.0, 32.0, 64.0]
    assert one["kind"].tolist() == ["curve"] * 6 + ["angle"] * 18 and set(one["orientation"]) == {30.0}
    assert one["radius"].tolist() == radii + corners * 3
    assert one["opening_degrees"].iloc[:6].isna().all()
    assert one["opening_degrees"].tolist()[6:] == [45.0] * 6 + [90.0] * 6 + [135.0] * 6
    expected = [r / 4 for r in radii] + [a / 45 + r / 8 for a in (45, 90, 135) for r in corners]
    assert one["response"].tolist() == expected
    assert one["ratio_to_best_curve"].tolist() == [v / 5.0 for v in expected]
    two = av[av["unit"] == "mixed3b:2"]
    assert two["radius"].tolist()[:5] == [4.0, 8.0, 16.0, 32.0, 64.0] and len(two) == 23  # 8 is a corner radius
    assert set(two["orientation"]) == {0.0} and two["ratio_to_best_curve"].isna().all()
    assert (two["layer"] == "mixed3b").all() and (two["index"] == 2).all()


def test_angle_vs_curve_with_given_series_and_without_best(monkeypatch):
    tuning = FakeMeasure(lambda u, row: 1.0 + (row.orientation == 90.0))(MODEL, "mixed3b:1",
                                                                          S.curves([0.0, 90.0, 180.0, 270.0], [10.0]))
    fake = _fake(monkeypatch, lambda u, row: (row.radius if row.kind == "curve" else 1.0)
                 if np.isclose(row.orientation, 90.0) else -5.0)
    av = T.angle_vs_curve(MODEL, "mixed3b:1", opening_degrees=(60.0,), corner_radii=(0.0, 10.0), stroke_width=4.0,
                          tuning=tuning, radii=(10.0, 50.0), batch_size=2)
    assert [kw for _, kw in fake.calls] == [{"batch_size": 2}, {"batch_size": 2}]
    assert fake.calls[0][0]["radius"].tolist() == [10.0, 50.0]
    assert set(fake.calls[0][0]["stroke_width"]) == {4.0} and set(fake.calls[1][0]["stroke_width"]) == {4.0}
    # best radius 50 (response 50): curves of radius 10 and 50, angles of corner 0 and 10
    assert av["kind"].tolist() == ["curve", "curve", "angle", "angle"]
    assert av["radius"].tolist() == [10.0, 50.0, 0.0, 10.0]
    assert av["opening_degrees"].tolist()[2:] == [60.0, 60.0]
    assert av["ratio_to_best_curve"].tolist() == [0.2, 1.0, 0.02, 0.02]


def test_angle_vs_curve_checks_the_angles_before_any_measurement(monkeypatch):
    fake = _fake(monkeypatch, lambda u, row: 1.0)
    best = _best([("mixed3b:1", 0.0, 10.0)])
    with pytest.raises(S.StimulusError) as e:
        T.angle_vs_curve(MODEL, "mixed3b:1", best=best, opening_degrees=(90.0, 180.0))
    assert e.value.args[0] == "opening_degrees must be in (0, 180) deg; got 180.0"
    with pytest.raises(S.StimulusError) as e:
        T.angle_vs_curve(MODEL, "mixed3b:1", best=best, stroke_width=-1.0)
    assert "stroke_width" in e.value.args[0]
    assert fake.calls == []


# ----------------------------------------------------------------------------- reference_stats
def test_reference_stats_per_layer_of_the_units(monkeypatch):
    calls = []

    def as_reference(images, n_images=100):
        calls.append(("images", images, n_images))
        return "reference set"

    def reference_statistics(model, layer, images, n_images=100, batch_size=25):
        calls.append(("stats", model, layer, images, n_images, batch_size))
        return f"table of {layer}"

    monkeypatch.setattr(T, "as_reference", as_reference)
    monkeypatch.setattr(T, "reference_statistics", reference_statistics)
    got = T.reference_stats(MODEL, ["3b:1", "mixed4a:2", "mixed3b:3"], "folder")
    assert got == {"mixed3b": "table of mixed3b", "mixed4a": "table of mixed4a"}
    assert list(got) == ["mixed3b", "mixed4a"]
    assert calls == [("images", "folder", 100),
                     ("stats", MODEL, "mixed3b", "reference set", 100, 25),
                     ("stats", MODEL, "mixed4a", "reference set", 100, 25)]
    calls.clear()
    T.reference_stats(MODEL, "mixed3a:0", "folder", n_images=7)
    assert calls[0] == ("images", "folder", 7)
    with pytest.raises(IndexError):
        T.reference_stats(MODEL, "mixed3a:100000", "folder")


def test_combing_and_angles_without_best_or_table_sweep_at_the_given_step(monkeypatch):
    """No ``best``, no ``tuning``: the joint sweep of :func:`best_stimulus` at the given
    ``orientation_step`` and ``radii`` (keywords :func:`measure` does not take)."""
    for run in (lambda: T.combing_index(MODEL, "mixed3b:1", sides=("both",), orientation_step=120.0, radii=(9.0,)),
                lambda: T.angle_vs_curve(MODEL, "mixed3b:1", corner_radii=(0.0,), orientation_step=120.0,
                                         radii=(9.0,))):
        fake = _fake(monkeypatch, lambda u, row: 1.0 + (row.orientation == 120.0))
        run()
        assert [kw for _, kw in fake.calls] == [{}, {}, {}]
        sweep, at_best = fake.calls[0][0], fake.calls[1][0]
        assert sweep["orientation"].tolist() == [0.0, 120.0, 240.0] and sweep["radius"].tolist() == [9.0] * 3
        assert at_best["orientation"].tolist() == pytest.approx([120.0], abs=1e-9)
        assert np.abs(fake.calls[2][0]["orientation"].to_numpy() - 120.0).max() < 1e-9


# ----------------------------------------------------------------------------- measure: defaults, resampling, bars
@pytest.fixture(scope="module")
def model():
    from circuits.model import InceptionV1

    torch.manual_seed(0)
    m = InceptionV1(SPEC)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, 0.05)
    return m.eval()


UNITS = ["mixed3a:5", "mixed3a:17", "mixed3a:40"]


def test_measure_defaults_are_pre_relu_on_the_fast_path(model):
    stim = S.curves([0.0, 90.0, 200.0], [10.0, 30.0])
    default = T.measure(model, UNITS, stim)
    pd.testing.assert_frame_equal(default, T.measure(model, UNITS, stim, pre_relu=True, fast=True), check_exact=True)
    assert (default["response"] < 0).any()  # pre-ReLU: post-ReLU would differ


def _resampled(model, units, seed=2):
    from edits import Ablate, EditPlan

    return EditPlan([Ablate(units, mode="resample", seed=seed)]).apply(model)[0]


def test_measure_runs_whole_resample_groups_numbered_from_first_index(model):
    """A model resampling from the batch: every stimulus's donor depends only on its number in
    the table (groups of 8, numbered from ``first_index``), so responses equal one forward
    pass of all 16 stimuli in their groups, for any batch size, and a sweep's second batch
    (``first_index=8``) gives the same rows as the whole table."""
    from circuits.geometry import measurement_window
    from circuits.names import hook_name
    from edits.interventions import group_ids, resample_groups

    edited = _resampled(model, UNITS)
    stim = S.curves(np.arange(0, 360, 22.5), [12.0])
    assert len(stim) == 16
    size, pos, center = measurement_window(SPEC, "mixed3a")
    name = hook_name("mixed3a", pre_relu=False)
    with torch.no_grad(), resample_groups(group_ids(16)):
        expect = edited.run(stim.at(size, center).render(), [name])[name][:, [5, 17, 40], pos, pos]
    for b in (1, 256):  # whole groups of 8 per pass, or one pass
        got = T.measure(edited, UNITS, stim, pre_relu=False, batch_size=b)["response"].to_numpy().reshape(3, 16)
        assert np.array_equal(got, expect.numpy().T), b
    second = T.measure(edited, UNITS, stim.subset(range(8, 16)), pre_relu=False, first_index=8)
    assert np.array_equal(second["response"].to_numpy().reshape(3, 8), expect.numpy().T[:, 8:])
    plain = T.measure(model, UNITS, stim, pre_relu=False)["response"].to_numpy().reshape(3, 16)
    assert not np.array_equal(plain, expect.numpy().T)  # it did resample


def test_progress_bars_name_the_layer_and_count_the_batches(model, monkeypatch):
    """``progress`` shows a bar on stderr (``disable=None``: shown on a terminal), named
    ``stimuli → <layer>``, counting batches; off by default (``disable=True``), on every path."""
    import tqdm.auto

    bars = []

    def bar(iterable=None, **kwargs):
        bars.append(kwargs)
        return iterable

    monkeypatch.setattr(T, "tqdm", bar)
    monkeypatch.setattr(tqdm.auto, "tqdm", bar)  # the fast path's (circuits.cone.run_cone)
    stim = S.curves([0.0, 90.0, 200.0], [10.0])
    edited = _resampled(model, UNITS)
    seen = []
    for m, kwargs in ((model, {"fast": False}), (model, {}), (edited, {})):
        for progress in (None, True):
            bars.clear()
            T.measure(m, "3a:5", stim if m is model else S.curves(np.arange(0, 360, 45.0), [12.0]), batch_size=2,
                      **kwargs, **({} if progress is None else {"progress": True}))
            seen.append([b for b in bars if b.get("desc", "").startswith("stimuli")])
    naive = dict(total=2, desc="stimuli → mixed3a", unit="batch", leave=False)
    assert seen[0] == [dict(naive, disable=True)] and seen[1] == [dict(naive, disable=None)]
    assert [b["disable"] for b in seen[2] + seen[3]] == [True, None]
    assert all(b["desc"] == "stimuli → mixed3a" for b in seen[2] + seen[3])
    coupled = dict(desc="stimuli → mixed3a", unit="batch", leave=False)
    assert seen[4] == [dict(coupled, disable=True)] and seen[5] == [dict(coupled, disable=False)]


def _paths(monkeypatch):
    """Records which path :func:`measure` takes per layer: ``[("fast" | "naive", layer), …]``."""
    taken = []
    fast, naive = T._measure_fast, T._measure_naive

    def on_fast(model, plan, *args):
        taken.append(("fast", plan.layer))
        return fast(model, plan, *args)

    def on_naive(model, layer, *args):
        taken.append(("naive", layer))
        return naive(model, layer, *args)

    monkeypatch.setattr(T, "_measure_fast", on_fast)
    monkeypatch.setattr(T, "_measure_naive", on_naive)
    return taken


def test_the_fast_path_is_the_default_and_fast_true_requires_it(model, monkeypatch):
    import copy

    taken = _paths(monkeypatch)
    stim = S.curves([0.0], [10.0])
    T.measure(model, "3a:5", stim)
    T.measure(model, "3a:5", stim, fast=True)
    T.measure(model, "3a:5", stim, fast=False)
    # a non-standard stage after the measured layer does not matter (the cone stops at the layer)
    later = copy.deepcopy(model)
    later.mixed5b.unit("1x1").conv.padding_mode = "reflect"
    T.measure(later, "3a:5", stim)
    assert taken == [("fast", "mixed3a"), ("fast", "mixed3a"), ("naive", "mixed3a"), ("fast", "mixed3a")]
    with pytest.raises(ValueError) as e:
        T.measure(later, "5b:5", stim, fast=True)
    assert e.value.args[0] == ("fast path unavailable for mixed5b: stage mixed5b is not the standard module "
                               "(edited structure or linear surrogate)")
    with pytest.raises(IndexError) as e:
        T.measure(model, ["3a:5", "mixed3a:256"], stim)
    assert e.value.args[0] == "mixed3a:256 is out of range for inceptionv1_caffe: mixed3a has units 0..255"


class _OnMeta(torch.nn.Module):
    """A stand-in network whose parameters live on the ``meta`` device: ``run`` records the
    device, size and hook names of each batch and answers channel ``c`` with the value ``c``
    at every position (so each unit's response is its index)."""

    def __init__(self):
        super().__init__()
        self.spec = SPEC
        self.p = torch.nn.Parameter(torch.empty(1, device="meta"))
        self.seen = []

    def run(self, x, names):
        self.seen.append((x.device.type, len(x), tuple(names)))
        return {n: torch.arange(256.0).view(1, 256, 1, 1).expand(len(x), 256, 8, 8) for n in names}


def test_measure_sends_the_stimuli_to_the_models_device_or_the_given_one():
    m = _OnMeta()
    stim = S.curves([0.0, 90.0, 180.0], [10.0])
    df = T.measure(m, ["mixed3a:5", "mixed3a:17"], stim, batch_size=2)
    assert m.seen == [("meta", 2, ("mixed3a_pre_relu",)), ("meta", 1, ("mixed3a_pre_relu",))]
    assert df["response"].tolist() == [5.0] * 3 + [17.0] * 3 and list(df.index) == list(range(6))
    m.seen.clear()
    T.measure(m, "mixed3a:5", stim, device="cpu", pre_relu=False)
    assert m.seen == [("cpu", 3, ("mixed3a",))]
    with pytest.raises(ValueError) as e:
        T.measure(m, "mixed3a:5", stim, fast=True)
    assert e.value.args[0] == "fast path unavailable for mixed3a: not an InceptionV1 (_OnMeta)"


# ----------------------------------------------------------------------------- compare, joint_sweep
def test_compare_stacks_variants_first_with_a_fresh_index(monkeypatch):
    fake = _fake(monkeypatch, lambda u, row: row.orientation)
    both = T.compare({"before": MODEL, "after": MODEL}, "mixed3b:1", S.curves([0.0, 90.0], [10.0]), pre_relu=False)
    assert list(both.columns[:4]) == ["variant", "unit", "layer", "index"] and list(both.index) == [0, 1, 2, 3]
    assert both["variant"].tolist() == ["before", "before", "after", "after"]
    assert both["response"].tolist() == [0.0, 90.0, 0.0, 90.0]
    assert [kw for _, kw in fake.calls] == [{"pre_relu": False}] * 2


def test_joint_sweep_defaults_curves_and_lines_and_checks_units_first(monkeypatch):
    fake = _fake(monkeypatch, lambda u, row: 0.0)
    T.joint_sweep(MODEL, "mixed3b:1")
    meta, kwargs = fake.calls[0]
    curves, lines = meta[meta["kind"] == "curve"], meta[meta["kind"] == "line"]
    assert kwargs == {} and len(curves) == 72 * 9 and curves["radius"].tolist()[:9] == list(S.DEFAULT_RADII)
    assert sorted(set(curves["orientation"])) == [float(o) for o in range(0, 360, 5)]
    assert lines["orientation"].tolist() == [float(o) for o in range(0, 180, 5)] and set(meta["stroke_width"]) == {2.0}
    T.joint_sweep(MODEL, "mixed3b:1", orientation_step=90.0, radii=(10.0,), batch_size=4, pre_relu=False)
    assert fake.calls[1][1] == {"batch_size": 4, "pre_relu": False}
    with pytest.raises(IndexError):  # the unit is checked before the (bad) grid
        T.joint_sweep(MODEL, "mixed3b:100000", orientation_step=-1.0)
    with pytest.raises(IndexError):
        T.best_stimulus(MODEL, "mixed3b:100000", tuning=pd.DataFrame())
    assert len(fake.calls) == 2


# ----------------------------------------------------------------------------- table measures: orders, messages, edges
def test_sigma_errors_name_the_first_layer_met_and_every_layer_available():
    rows = [dict(variant=v, unit=u, layer=u.split(":")[0], index=int(u.split(":")[1]), kind=k, orientation=0.0,
                 radius=10.0, response=1.0) for v, u in (("a", "mixed3b:1"), ("b", "mixed3a:2"))
            for k in ("curve", "line")]
    df = pd.DataFrame(rows)  # mixed3b first, in the table and in the (variant, unit) order
    stats = {layer: pd.DataFrame({"mean": [0.0], "std": [1.0]}, index=pd.Index([0], name="index"))
             for layer in ("mixed4a", "mixed4b")}
    message = "no reference statistics for mixed3b; have mixed4a, mixed4b"
    for run in (lambda: T.add_sigma(df, stats), lambda: T.curve_line_preference(df, stats)):
        with pytest.raises(KeyError) as e:
            run()
        assert e.value.args[0] == message


def test_angle_curve_summary_ratios_only_for_an_exciting_best_curve():
    rows = []
    for unit, curve, sharp, rounded in (("mixed3b:1", 0.0, 3.0, 1.0), ("mixed3b:2", 0.5, 0.25, 1.0),
                                        ("mixed3b:3", -1.0, 2.0, 1.0)):
        layer, index = unit.split(":")
        base = dict(unit=unit, layer=layer, index=int(index))
        rows += [dict(base, kind="curve", radius=10.0, response=curve),
                 dict(base, kind="angle", radius=0.0, response=sharp),
                 dict(base, kind="angle", radius=8.0, response=rounded)]
    got = T.angle_curve_summary(pd.DataFrame(rows)).set_index("unit")
    assert got.loc["mixed3b:2", ["angle_curve_ratio", "sharp_curve_ratio"]].tolist() == [2.0, 0.5]
    for u in ("mixed3b:1", "mixed3b:3"):  # best curve 0 or negative: NaN, not a ratio (nor a division by 0)
        assert got.loc[u, ["angle_curve_ratio", "sharp_curve_ratio"]].isna().all()
    assert got.loc["mixed3b:1", "best_angle"] == 3.0 and got.loc["mixed3b:3", "sharp_angle"] == 2.0


def test_tuning_metrics_of_object_columns_equal_those_of_float_columns():
    """A table rebuilt from records (object columns of Python floats) gives the same metrics."""
    o = np.arange(0, 360, 30.0)
    radial = pd.DataFrame({"unit": "mixed3b:1", "layer": "mixed3b", "index": 1, "orientation": o,
                           "response": np.exp(np.cos(np.radians(o - 60.0)))})
    expect = T.tuning_metrics(radial)
    got = T.tuning_metrics(radial.astype({"orientation": object, "response": object}))
    pd.testing.assert_frame_equal(got, expect, check_exact=True)
    assert expect["preferred_orientation"].iloc[0] == pytest.approx(60.0, abs=1e-9)


def test_combing_rows_follow_the_units_order_and_need_a_positive_plain_curve(monkeypatch):
    """Rows in the order the units are given (not sorted); the indices are NaN unless the plain
    curve excites the unit (> 0): for a plain response of exactly 0 too (no division by 0)."""
    plain = {"mixed3b:9": 0.0, "mixed3b:1": 0.5}
    _fake(monkeypatch, lambda u, row: plain[u] if row.kind == "curve" else 1.0)
    c = T.combing_index(MODEL, ["mixed3b:9", "mixed3b:1"], sides=("both",),
                        best=_best([("mixed3b:9", 0.0, 10.0), ("mixed3b:1", 0.0, 10.0)]))
    assert c["unit"].tolist() == ["mixed3b:9", "mixed3b:1"] and c["layer"].tolist() == ["mixed3b"] * 2
    assert c["index"].tolist() == [9, 1] and c["teeth"].tolist() == [1.0, 1.0] and c["plain"].tolist() == [0.0, 0.5]
    assert math.isnan(c["combing_index"].iloc[0]) and math.isnan(c["teeth_index"].iloc[0])
    assert c["combing_index"].tolist()[1:] == [2.0] and c["teeth_index"].tolist()[1:] == [2.0]


def test_units_then_stimulus_arguments_are_checked_before_the_best_stimulus_search(monkeypatch):
    fake = _fake(monkeypatch, lambda u, row: 1.0)
    for run in (lambda **kw: T.combing_index(MODEL, **kw), lambda **kw: T.angle_vs_curve(MODEL, **kw)):
        with pytest.raises(IndexError):  # the unit first, then the stimuli
            run(units="mixed3b:100000", stroke_width=-1.0)
    for kwargs in ({"spacing_px": 0.0}, {"length_px": -1.0}, {"stroke_width": 0.0}):
        with pytest.raises(S.StimulusError) as e:
            T.combing_index(MODEL, "mixed3b:1", **kwargs)  # no best, no table: a sweep would come next
        assert next(iter(kwargs)) in e.value.args[0]
    for kwargs in ({"opening_degrees": (0.0,)}, {"corner_radii": (-1.0,)}, {"stroke_width": 0.0}):
        with pytest.raises(S.StimulusError):
            T.angle_vs_curve(MODEL, "mixed3b:1", **kwargs)
    assert fake.calls == []


def test_angle_vs_curve_ratios_need_a_best_curve_above_zero(monkeypatch):
    """Best-radius curve responses 0 (NaN ratios, not inf) and 0.5 (ratios, though below 1); a
    corner radius of 0.5 px is a curve radius too (every corner radius > 0)."""
    best_curve = {"mixed3b:1": 0.0, "mixed3b:2": 0.5}
    _fake(monkeypatch, lambda u, row: (best_curve[u] if row.radius == 10.0 else 3.0) if row.kind == "curve" else 1.0)
    best = _best([("mixed3b:1", 0.0, 10.0), ("mixed3b:2", 0.0, 10.0)])
    av = T.angle_vs_curve(MODEL, ["mixed3b:1", "mixed3b:2"], best=best, opening_degrees=(90.0,),
                          corner_radii=(0.0, 0.5))
    one, two = av[av["unit"] == "mixed3b:1"], av[av["unit"] == "mixed3b:2"]
    assert one["kind"].tolist() == ["curve", "curve", "angle", "angle"] and one["radius"].tolist() == [0.5, 10.0, 0.0, 0.5]
    assert one["ratio_to_best_curve"].isna().all()
    assert two["ratio_to_best_curve"].tolist() == [6.0, 1.0, 2.0, 2.0]


class _Coupled:
    """A forward hook that mixes the images of a batch (what :func:`edits.interventions.batch_coupled` looks for)."""

    batch_coupled = True

    def __init__(self):
        self.fn = self

    def __call__(self, module, args, output):
        return output


def test_measure_sends_whole_resample_groups_to_the_models_device():
    m = _OnMeta()
    m.register_forward_hook(_Coupled())
    df = T.measure(m, ["mixed3a:5"], S.curves(np.arange(0, 360, 22.5), [10.0]), batch_size=5)
    assert m.seen == [("meta", 8, ("mixed3a_pre_relu",))] * 2  # whole groups of 8, not batches of 5
    assert df["response"].tolist() == [5.0] * 16
