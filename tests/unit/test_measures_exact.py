"""Every measure a tuning report prints, on hand-built response tables whose answers are known
exactly (issue 14, item 2): radial tuning, preferred orientation, selectivity, tuning width,
echo ratio, σ normalisation (reference statistics, ``add_sigma``, ``joint_tuning``),
curve/line preference, best stimulus and combing index.

The tables have the shape of :func:`studies.tuning.measure` output (``unit``, ``layer``,
``index``, ``kind``, ``orientation``, ``radius``, ``response``, optionally ``variant``). Where
a measure calls the network (best stimulus, combing) ``measure`` is replaced by a lookup in a
known response function, so the test checks the measure, not the forward pass. Expected values
come from closed forms (a box's vector sum, Bessel functions of a von Mises curve, the
half-maximum crossing of a von Mises curve) or hand arithmetic, never from the code under test.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import i0, i1

from circuits.spec import get_spec
from circuits.units import resolve_units
from studies.measure import tuning as T
from studies.measure.statistics import reference_statistics_by_layer

SPEC = get_spec("inceptionv1_caffe")


def table(curve, orientations, radii=(10.0,), units=("mixed3b:1",), line=None, variants=None) -> pd.DataFrame:
    """A ``measure``-shaped table: ``curve(unit, orientation, radius)`` for every curve and
    ``line(unit, orientation)`` for lines at orientations < 180 (if given)."""
    rows = []
    for v in variants or [None]:
        for u in units:
            layer, idx = u.split(":")
            for o in orientations:
                for r in radii:
                    rows.append(dict(variant=v, unit=u, layer=layer, index=int(idx), kind="curve",
                                     orientation=float(o), radius=float(r), response=float(curve(u, o, r))))
                if line is not None and o < 180:
                    rows.append(dict(variant=v, unit=u, layer=layer, index=int(idx), kind="line",
                                     orientation=float(o), radius=math.inf, response=float(line(u, o))))
    df = pd.DataFrame(rows)
    return df if variants else df.drop(columns="variant")


def radial_of(values: dict[float, float], step: float = 5.0, unit: str = "mixed3b:1") -> pd.DataFrame:
    """A radial tuning curve on the full ``step`` grid: ``values`` where given, 0 elsewhere."""
    o = np.arange(0, 360, step)
    r = [values.get(float(x), 0.0) for x in o]
    return pd.DataFrame({"unit": unit, "layer": unit.split(":")[0], "index": int(unit.split(":")[1]),
                         "orientation": o.astype(float), "response": np.asarray(r, float)})


def metrics(radial: pd.DataFrame) -> pd.Series:
    m = T.tuning_metrics(radial)
    assert len(m) == 1
    return m.iloc[0]


# ----------------------------------------------------------------------------- radial tuning
def test_radial_tuning_averages_positive_parts_over_radius_per_orientation():
    ors = np.arange(0, 360, 30)

    def f(u, o, r):  # unit-dependent; negative values at radius 40 and sometimes at 20
        a = 1.0 if u.endswith(":1") else 3.0
        return {10: 2 * a * (1 + math.cos(math.radians(o))), 20: a * math.cos(math.radians(o)), 40: -1.0}[r]

    df = table(f, ors, radii=(10, 20, 40), units=("mixed3b:1", "mixed3b:7"), line=lambda u, o: 1000.0,
               variants=["after", "before"])
    rad = T.radial_tuning(df)
    assert list(rad.columns) == ["variant", "unit", "layer", "index", "orientation", "response"]
    assert len(rad) == 2 * 2 * len(ors)  # variants × units × orientations; lines ignored
    for _, row in rad.iterrows():
        a = 1.0 if row["unit"].endswith(":1") else 3.0
        c = math.cos(math.radians(row["orientation"]))
        expected = (2 * a * (1 + c) + max(a * c, 0.0) + 0.0) / 3  # mean of max(response, 0) over 3 radii
        assert row["response"] == pytest.approx(expected, abs=1e-12)
    # hand values: unit 1 at 0°: (4 + 1 + 0) / 3; at 180°: (0 + 0 + 0) / 3
    r1 = rad[(rad["unit"] == "mixed3b:1") & (rad["variant"] == "before")].set_index("orientation")["response"]
    assert r1[0.0] == pytest.approx(5 / 3) and r1[180.0] == pytest.approx(0.0, abs=1e-12)
    # lines have their own radial curve when asked (radius inf, one "radius" per orientation)
    lines = T.radial_tuning(df, kind="line")
    assert len(lines) == 2 * 2 * 6 and (lines["response"] == 1000.0).all()


# ----------------------------------------------------------------------------- preferred orientation, selectivity
@pytest.mark.parametrize("mu", [132.5, 350.0, 0.0])
@pytest.mark.parametrize("kappa", [0.5, 2.0, 8.0])
def test_von_mises_preferred_orientation_and_selectivity(mu, kappa):
    """r(θ) = exp(κ cos(θ − μ)) on a 5° grid: the vector-sum angle is μ (the grid is symmetric
    about μ), and 1 − circular variance is I1(κ)/I0(κ) (aliasing on 72 bins is < 1e-15)."""
    o = np.arange(0, 360, 5.0)
    rad = radial_of(dict(zip(o, np.exp(kappa * np.cos(np.radians(o - mu))))))
    m = metrics(rad)
    assert T.angular_difference(m["preferred_orientation"], mu) < 1e-9
    assert 0 <= m["preferred_orientation"] < 360
    assert m["selectivity"] == pytest.approx(i1(kappa) / i0(kappa), rel=1e-12)
    assert m["peak"] == pytest.approx(math.exp(kappa * math.cos(math.radians(mu % 5))))  # nearest bin: 0 or 2.5° off


def test_box_selectivity_and_vector_sum_differs_from_argmax():
    """A box of k equal bins of step δ: |Σ e^{iθ}| / k = sin(kδ/2) / (k sin(δ/2)); the
    preferred orientation is the box centre even when the single largest bin is elsewhere."""
    k, d = 9, 5.0
    vals = {float(o): 1.0 for o in np.arange(200 - 20, 200 + 21, d)}  # 180 … 220, centre 200
    assert len(vals) == k
    m = metrics(radial_of(vals))
    assert m["selectivity"] == pytest.approx(math.sin(math.radians(k * d / 2)) / (k * math.sin(math.radians(d / 2))),
                                             rel=1e-12)
    assert T.angular_difference(m["preferred_orientation"], 200.0) < 1e-9
    vals[185.0] = 1.01  # the argmax moves to 185°, the vector sum hardly moves
    m = metrics(radial_of(vals))
    assert m["peak_orientation"] == 185.0 and m["peak"] == 1.01
    assert T.angular_difference(m["preferred_orientation"], 200.0) < 0.1


def test_no_positive_response_gives_nan_orientation_and_zero_selectivity():
    m = metrics(radial_of({}))
    assert math.isnan(m["preferred_orientation"]) and math.isnan(m["peak_orientation"])
    assert m["selectivity"] == 0.0 and math.isnan(m["tuning_width"]) and math.isnan(m["echo_ratio"])


# ----------------------------------------------------------------------------- tuning width
def test_tuning_width_counts_bins_at_or_above_half_peak():
    vals = {float(o): 1.0 for o in range(185, 216, 5)}  # 7 bins at the peak
    vals.update({180.0: 0.5, 220.0: 0.4999, 90.0: 0.2})  # exactly half counts, just below does not
    m = metrics(radial_of(vals))
    assert m["tuning_width"] == 8 * 5.0
    # the same shape on a 2° grid: 11 bins ≥ half
    m = metrics(radial_of({float(o): 3.0 for o in range(100, 121, 2)}, step=2.0))
    assert m["tuning_width"] == 11 * 2.0


@pytest.mark.parametrize("kappa", [1.5, 4.0, 20.0])
def test_tuning_width_of_a_von_mises_curve(kappa):
    """exp(κ(cos x − 1)) ≥ ½ ⇔ |x| ≤ arccos(1 − ln2/κ) = h: on a 0.5° grid centred on the peak
    2·⌊h/0.5⌋ + 1 bins are ≥ half the peak (h is never within 1e-6 of a grid point here)."""
    step, mu = 0.5, 47.0
    o = np.arange(0, 360, step)
    rad = radial_of(dict(zip(o, np.exp(kappa * (np.cos(np.radians(o - mu)) - 1)))), step=step)
    h = math.degrees(math.acos(1 - math.log(2) / kappa))
    assert abs(h / step - round(h / step)) > 1e-6
    assert metrics(rad)["tuning_width"] == (2 * math.floor(h / step) + 1) * step


# ----------------------------------------------------------------------------- echo ratio
def test_echo_ratio_is_centred_on_peak_orientation_plus_180():
    """Peak 1.0 at 100° with a shoulder at 60–95° (so the vector-sum orientation is ≈ 83°, not
    100°). The echo window is 280° ± 30° (inclusive): it holds 0.3 at 305° and 0.35 at 310°
    (exactly 30° away). A 0.6 lobe at 240° (40° from 280°, but within 30° of 83° + 180°) and a
    0.45 lobe at 315° (35° away) must not count."""
    vals = {float(o): 0.9 for o in range(60, 96, 5)}
    vals.update({100.0: 1.0, 305.0: 0.3, 310.0: 0.35, 240.0: 0.6, 315.0: 0.45})
    m = metrics(radial_of(vals))
    assert m["peak_orientation"] == 100.0
    assert T.angular_difference(m["preferred_orientation"] + 180, 240.0) < 30  # a wrong centre would see 0.6
    assert m["echo_ratio"] == pytest.approx(0.35 / 1.0)
    # scaling the curve leaves the ratio unchanged; no echo lobe → 0
    assert metrics(radial_of({k: 7 * v for k, v in vals.items()}))["echo_ratio"] == pytest.approx(0.35)
    assert metrics(radial_of({100.0: 2.0, 95.0: 1.0}))["echo_ratio"] == 0.0


def test_echo_window_wraps_around_zero():
    # peak at 190° → window 10° ± 30° = 340° … 40°, across 0°
    m = metrics(radial_of({190.0: 2.0, 345.0: 0.5, 335.0: 1.5, 45.0: 1.5}))
    assert m["echo_ratio"] == pytest.approx(0.25)


def test_tuning_metrics_groups_by_variant_and_unit():
    a = radial_of({100.0: 1.0, 280.0: 0.5}, unit="mixed3b:1")
    b = radial_of({10.0: 4.0, 190.0: 1.0, 15.0: 2.0}, unit="mixed3b:2")
    rad = pd.concat([a.assign(variant="x"), b.assign(variant="x"), a.assign(variant="y")], ignore_index=True)
    m = T.tuning_metrics(rad).set_index(["variant", "unit"])
    assert len(m) == 3
    assert m.loc[("x", "mixed3b:1"), "echo_ratio"] == 0.5 and m.loc[("y", "mixed3b:1"), "echo_ratio"] == 0.5
    assert m.loc[("x", "mixed3b:2"), "echo_ratio"] == 0.25 and m.loc[("x", "mixed3b:2"), "tuning_width"] == 10.0
    assert m.loc[("x", "mixed3b:2"), "peak"] == 4.0


# ----------------------------------------------------------------------------- σ normalisation
class _KnownActivations(torch.nn.Module):
    """A stand-in network whose ``run`` returns a fixed activation tensor per image."""

    def __init__(self, acts: torch.Tensor):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))
        self.acts = acts

    def run(self, x, names):
        idx = x[:, 0, 0, 0].long()  # the images carry their own index
        return {n: self.acts[idx] for n in names}


def test_reference_statistics_are_mean_and_sample_std_over_images_and_positions():
    g = torch.Generator().manual_seed(0)
    acts = torch.randn(7, 3, 4, 5, generator=g, dtype=torch.float64) * torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1, 1)
    acts[:, 2] += 3.0
    images = torch.arange(7, dtype=torch.float32).view(7, 1, 1, 1).expand(7, 3, 2, 2).clone()
    st = reference_statistics_by_layer(_KnownActivations(acts), ["mixed3b"], images, batch_size=3)["mixed3b"]
    a = acts.numpy().transpose(1, 0, 2, 3).reshape(3, -1)  # unit × (image, y, x): 140 values each
    np.testing.assert_allclose(st["mean"], a.mean(1), rtol=1e-12)
    np.testing.assert_allclose(st["std"], a.std(1, ddof=1), rtol=1e-10)
    np.testing.assert_allclose(st["frac_positive"], (a > 0).mean(1), rtol=0)


def test_add_sigma_and_joint_tuning_in_sigma():
    stats = pd.DataFrame({"mean": [10.0, 1.0, -2.0], "std": [5.0, 2.0, 4.0]}, index=pd.Index([9, 1, 4], name="index"))
    df = table(lambda u, o, r: {"mixed3b:1": 7.0, "mixed3b:4": 2.0, "mixed3b:9": 0.0}[u] + r / 10, [0, 90],
               radii=(10, 20), units=("mixed3b:4", "mixed3b:1", "mixed3b:9"))
    df = df.sample(frac=1.0, random_state=0)  # the index order must be kept
    out = T.add_sigma(df, stats)
    assert list(out.index) == list(df.index)
    expect = {"mixed3b:1": lambda x: (x - 1) / 2, "mixed3b:4": lambda x: (x + 2) / 4, "mixed3b:9": lambda x: (x - 10) / 5}
    for _, r in out.iterrows():
        assert r["response_sigma"] == pytest.approx(expect[r["unit"]](r["response"]), abs=1e-12)
    row = out[(out["unit"] == "mixed3b:1") & (out["radius"] == 10)].iloc[0]
    assert (row["mean"], row["std"], row["response_sigma"]) == (1.0, 2.0, 3.5)  # (8 − 1) / 2
    # the three accepted forms of the statistics agree
    with_layer = stats.reset_index().assign(layer="mixed3b")
    pd.testing.assert_frame_equal(T.add_sigma(df, {"mixed3b": stats}), out)
    pd.testing.assert_frame_equal(T.add_sigma(df, with_layer), out)
    with pytest.raises(KeyError, match=r"\[9\]"):
        T.add_sigma(df, stats.drop(index=9))
    with pytest.raises(KeyError, match="mixed3b"):
        T.add_sigma(df, {"mixed3a": stats})
    # two layers, rows interleaved: each row keeps its place and gets its own layer's statistics
    other = table(lambda u, o, r: 5.0, [0, 90], radii=(10, 20), units=("mixed3a:1",))
    both = pd.concat([df.reset_index(drop=True), other]).sample(frac=1.0, random_state=1).reset_index(drop=True)
    stats3a = pd.DataFrame({"mean": [4.0, 1.0], "std": [0.5, 1.0]}, index=pd.Index([1, 2], name="index"))
    out2 = T.add_sigma(both, {"mixed3b": stats, "mixed3a": stats3a})
    assert list(out2["unit"]) == list(both["unit"]) and list(out2["response"]) == list(both["response"])
    is3a = out2["layer"] == "mixed3a"
    assert (out2.loc[is3a, "response_sigma"] == 2.0).all()  # (5 − 4) / 0.5
    np.testing.assert_allclose(out2.loc[~is3a, "response_sigma"],
                               [expect[u](x) for u, x in zip(out2.loc[~is3a, "unit"], out2.loc[~is3a, "response"])])
    joint = T.joint_tuning(df, stats)
    assert len(joint) == 3 * 2 * 2
    j = joint.set_index(["unit", "orientation", "radius"])
    assert j.loc[("mixed3b:9", 90.0, 20.0), "response_sigma"] == pytest.approx((2.0 - 10) / 5)
    assert j.loc[("mixed3b:4", 0.0, 10.0), "response_sigma"] == pytest.approx((3.0 + 2) / 4)


# ----------------------------------------------------------------------------- curve vs line
def test_curve_line_preference_on_a_known_table():
    def curve(u, o, r):
        if u == "mixed3b:1":
            return 9.0 if (o, r) == (40, 20) else (8.5 if (o, r) == (220, 10) else 1.0)
        return 5.0 if (o, r) == (300, 40) else -1.0

    def line(u, o):
        if u == "mixed3b:1":
            return 3.0 if o == 90 else (2.9 if o == 40 else 0.0)
        return -2.0 if o == 150 else -3.0

    df = table(curve, range(0, 360, 10), radii=(10, 20, 40), units=("mixed3b:1", "mixed3b:2"), line=line)
    c = T.curve_line_preference(df).set_index("unit")
    a, b = c.loc["mixed3b:1"], c.loc["mixed3b:2"]
    assert (a["best_curve"], a["best_curve_orientation"], a["best_curve_radius"]) == (9.0, 40.0, 20.0)
    assert (a["best_line"], a["best_line_orientation"], a["ratio"]) == (3.0, 90.0, 3.0)
    assert (b["best_curve"], b["best_curve_orientation"], b["best_curve_radius"]) == (5.0, 300.0, 40.0)
    assert (b["best_line"], b["best_line_orientation"]) == (-2.0, 150.0) and math.isnan(b["ratio"])
    stats = pd.DataFrame({"mean": [1.0, -4.0], "std": [2.0, 0.5]}, index=pd.Index([1, 2], name="index"))
    s = T.curve_line_preference(df, stats).set_index("unit")
    assert (s.loc["mixed3b:1", "curve_sigma"], s.loc["mixed3b:1", "line_sigma"]) == (4.0, 1.0)
    assert s.loc["mixed3b:1", "ratio_sigma"] == 4.0  # (9 − 1) / (3 − 1)
    assert (s.loc["mixed3b:2", "curve_sigma"], s.loc["mixed3b:2", "line_sigma"]) == (18.0, 4.0)
    assert s.loc["mixed3b:2", "ratio_sigma"] == 4.5  # (5 + 4) / (−2 + 4)
    below = pd.DataFrame({"mean": [1.0, 0.0], "std": [2.0, 1.0]}, index=pd.Index([1, 2], name="index"))
    s = T.curve_line_preference(df, below).set_index("unit")
    assert s.loc["mixed3b:2", "ratio_sigma"] == pytest.approx(5.0 / 1e-9)  # best line below the mean: floor


# ----------------------------------------------------------------------------- best stimulus, combing
def fake_measure(response):
    """A stand-in for :func:`studies.tuning.measure`: ``response(unit, meta row)`` per stimulus."""
    calls = []

    def measure(model, units, stimuli, **kwargs):
        units = resolve_units(units, model.spec)
        calls.append(stimuli.meta.copy())
        frames = []
        for u in units:
            df = stimuli.meta.copy()
            df.insert(0, "index", u.index)
            df.insert(0, "layer", u.layer)
            df.insert(0, "unit", str(u))
            df["response"] = [float(response(str(u), r)) for r in df.itertuples()]
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    measure.calls = calls
    return measure


MODEL = SimpleNamespace(spec=SPEC)


def test_best_stimulus_measures_curves_at_the_vector_sum_orientation(monkeypatch):
    mu = {"mixed3b:1": 132.5, "mixed3b:2": 10.0}
    best_r = {"mixed3b:1": 20.0, "mixed3b:2": 80.0}
    tuning = table(lambda u, o, r: math.exp(2 * math.cos(math.radians(o - mu[u]))), np.arange(0, 360, 5.0),
                   radii=(10, 40), units=tuple(mu))

    def response(u, row):  # only the exact preferred orientation gives the radius profile
        if not np.isclose(row.orientation, mu[u], atol=1e-9):
            return -100.0
        return 10.0 - abs(math.log(row.radius / best_r[u]))

    fake = fake_measure(response)
    monkeypatch.setattr(T, "measure", fake)
    b = T.best_stimulus(MODEL, list(mu), tuning=tuning, radii=[10, 20, 40, 80, 160]).set_index("unit")
    for u in mu:
        assert T.angular_difference(b.loc[u, "preferred_orientation"], mu[u]) < 1e-9
        assert b.loc[u, "best_radius"] == best_r[u] and b.loc[u, "best_response"] == pytest.approx(10.0)
        assert b.loc[u, "selectivity"] == pytest.approx(i1(2.0) / i0(2.0), rel=1e-12)
    assert len(fake.calls) == 1 and sorted(set(fake.calls[0]["radius"])) == [10, 20, 40, 80, 160]


def test_combing_index_is_combed_over_plain_per_side(monkeypatch):
    values = {  # unit → (plain, {side: (combed, teeth)})
        "mixed3b:1": (4.0, {"inward": (6.0, 1.0), "outward": (2.0, -0.5), "both": (-1.0, 3.0)}),
        "mixed3b:2": (-2.0, {"inward": (6.0, 1.0), "outward": (2.0, 2.0), "both": (5.0, 1.0)}),
    }
    best = pd.DataFrame({"unit": ["mixed3b:1", "mixed3b:2"], "layer": "mixed3b", "index": [1, 2],
                         "preferred_orientation": [30.0, float("nan")], "best_radius": [20.0, 40.0],
                         "best_response": [4.0, -2.0], "selectivity": [0.5, 0.0]})

    def response(u, row):
        plain, sides = values[u]
        if row.kind == "curve":
            return plain
        return sides[row.side][0 if row.kind == "combed_curve" else 1]

    monkeypatch.setattr(T, "measure", fake_measure(response))
    c = T.combing_index(MODEL, ["mixed3b:1", "mixed3b:2"], best=best).set_index(["unit", "side"])
    assert len(c) == 6
    u1 = c.loc["mixed3b:1"]
    assert list(u1["combing_index"]) == [1.5, 0.5, -0.25]  # inward, outward, both
    assert list(u1["teeth_index"]) == [0.25, -0.125, 0.75]
    assert (u1["plain"] == 4.0).all() and (u1["orientation"] == 30.0).all() and (u1["radius"] == 20.0).all()
    u2 = c.loc["mixed3b:2"]  # the plain curve does not excite the unit: NaN; NaN orientation measured at 0°
    assert u2["combing_index"].isna().all() and u2["teeth_index"].isna().all()
    assert (u2["orientation"] == 0.0).all() and (u2["radius"] == 40.0).all()
    assert list(u2["combed"]) == [6.0, 2.0, 5.0]
