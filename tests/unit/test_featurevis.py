"""Feature visualization engine without real data: parameterizations, transforms, objectives,
render determinism and cache (random-init model), CLI errors."""

from __future__ import annotations

import math

import pytest
import torch

from circuits.model import InceptionV1
from studies.measure.featurevis import (
    COLOR_CORRELATION_SQRT,
    ImageParam,
    VisSettings,
    channel,
    color_matrix,
    direction,
    diversity,
    fft_scale,
    negative,
    neuron,
    render,
)
from studies.measure.featurevis.objectives import Acts
from studies.measure.featurevis.param import FFT_OUTPUT_SCALE
from studies.measure.featurevis.transforms import Jitter, Pad, RandomScale, rotate, standard_transforms


# ----------------------------------------------------------------------------- parameterizations
@pytest.mark.parametrize("kind", ["fft", "pixel"])
def test_same_seed_same_image_bitwise(kind):
    a, b = ImageParam(3, 40, kind=kind, seed=7)(), ImageParam(3, 40, kind=kind, seed=7)()
    c = ImageParam(3, 40, kind=kind, seed=8)()
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (3, 3, 40, 40) and 0 < a.min() and a.max() < 1
    # images of a batch are independent: image 1 alone equals image 1 of the batch
    p = ImageParam(3, 40, kind=kind, seed=7)
    assert torch.equal(p(slice(1, 2)), p()[1:2])


def test_fft_scale_is_inverse_frequency_clamped_at_one_over_size():
    h, w = 8, 10
    s = fft_scale(h, w)
    assert s.shape == (8, 6)
    assert s[0, 0].item() == pytest.approx(10.0)  # f = 0 → 1 / (1 / max(h, w))
    assert s[0, 1].item() == pytest.approx(10.0)  # f = 1/10 → 10
    assert s[0, 5].item() == pytest.approx(2.0)   # f = 5/10 → 2
    assert s[2, 0].item() == pytest.approx(4.0)   # fy = 2/8 → 4
    assert s[1, 1].item() == pytest.approx(1 / math.hypot(1 / 8, 1 / 10), rel=1e-6)


def test_fft_image_equals_lucid_formulation():
    """Lucid: unnormalised irfft2 of spectrum · scale · sqrt(h·w), divided by 4 — our orthonormal
    inverse FFT must give the same image."""
    p = ImageParam(2, 12, 16, kind="fft", decorrelate=False, seed=1)
    spec = torch.view_as_complex(p.param.detach()) * fft_scale(12, 16) * math.sqrt(12 * 16)
    lucid = torch.fft.irfft2(spec, s=(12, 16)) * FFT_OUTPUT_SCALE
    torch.testing.assert_close(p.raw().detach(), lucid, rtol=1e-5, atol=1e-7)


def test_colour_matrix_is_lucid_sqrt_normalised_by_largest_column():
    m = color_matrix()
    raw = torch.tensor(COLOR_CORRELATION_SQRT)
    norms = raw.norm(dim=0)
    assert norms.argmax().item() == 0 and norms[0].item() == pytest.approx(math.sqrt(0.26**2 + 0.27**2 + 0.27**2))
    torch.testing.assert_close(m, raw / norms.max())
    assert m.norm(dim=0).max().item() == pytest.approx(1.0)
    # the decorrelated image is the sigmoid of M @ raw per pixel
    p = ImageParam(1, 16, kind="pixel", seed=0)
    torch.testing.assert_close(p(), torch.sigmoid(torch.einsum("ij,njhw->nihw", m, p.param)))


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="valid: fft, pixel"):
        ImageParam(1, 32, kind="lab")
    with pytest.raises(ValueError, match="at least 8x8"):
        ImageParam(1, 4)
    with pytest.raises(ValueError, match="steps must be"):
        VisSettings(steps=0).check()


# ----------------------------------------------------------------------------- transforms
def test_transform_sizes_values_and_rotation_direction():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 20, 20)
    p = Pad(12)(x, g)
    assert p.shape[-1] == 44 and torch.all(p[..., :12, :] == 0.5)
    assert Jitter(8)(p, g).shape[-2:] == (36, 36)
    assert torch.equal(rotate(x, 0), x)
    # 90° counter-clockwise (as displayed) is numpy/torch rot90 over (rows, cols)
    torch.testing.assert_close(rotate(x, 90), torch.rot90(x, 1, (-2, -1)), atol=1e-5, rtol=0)
    s = RandomScale([1.1])(x, g)
    assert s.shape[-2:] == (22, 22)


def test_standard_transforms_differentiable_and_seeded():
    x = torch.rand(2, 3, 96, 96, requires_grad=True)
    t = standard_transforms()
    y1 = t(x, torch.Generator().manual_seed(3))
    y2 = t(x, torch.Generator().manual_seed(3))
    assert torch.equal(y1, y2)
    (g,) = torch.autograd.grad(y1.sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    # every draw of the sizes: 96 + 24 - 8 = 112, scaled by 0.9..1.1, minus 4
    sizes = {standard_transforms()(x, torch.Generator().manual_seed(s)).shape[-1] for s in range(40)}
    assert sizes <= {round(112 * (1 + (i - 5) / 50)) - 4 for i in range(11)} and len(sizes) > 3


# ----------------------------------------------------------------------------- objectives
def _acts(n=3, c=480, h=5):
    torch.manual_seed(0)
    a = torch.randn(n, c, h, h)
    return a, Acts({"mixed3b_pre_relu": a, "mixed3b": a.relu()}, {"mixed3b_pre_relu": (2, 2), "mixed3b": (2, 2)})


def test_objective_algebra():
    from circuits.spec import get_spec

    spec = get_spec("inceptionv1_caffe")
    a, acts = _acts()
    n1 = neuron("3b:10").bind(spec)
    n2 = neuron("mixed3b:20").bind(spec)
    torch.testing.assert_close(n1(acts), a[:, 10, 2, 2])
    torch.testing.assert_close((n1 + n2)(acts), a[:, 10, 2, 2] + a[:, 20, 2, 2])
    torch.testing.assert_close((n1 - 2.5 * n2)(acts), a[:, 10, 2, 2] - 2.5 * a[:, 20, 2, 2])
    torch.testing.assert_close((-n1)(acts), -a[:, 10, 2, 2])
    torch.testing.assert_close(negative(n1)(acts), -a[:, 10, 2, 2])
    torch.testing.assert_close((n1 * 3)(acts), 3 * a[:, 10, 2, 2])
    post = neuron("3b:10", pre_relu=False).bind(spec)
    torch.testing.assert_close(post(acts), a[:, 10, 2, 2].relu())
    per_image = neuron(["3b:1", "3b:2", "3b:3"]).bind(spec)
    torch.testing.assert_close(per_image(acts), torch.stack([a[0, 1, 2, 2], a[1, 2, 2, 2], a[2, 3, 2, 2]]))
    assert per_image.batch_size() == 3
    torch.testing.assert_close(channel("3b:7").bind(spec)(acts), a[:, 7].mean((1, 2)))
    v = torch.zeros(480)
    v[[4, 9]] = torch.tensor([1.0, -2.0])
    torch.testing.assert_close(direction("mixed3b", v, at="center").bind(spec)(acts), a[:, 4, 2, 2] - 2 * a[:, 9, 2, 2])
    torch.testing.assert_close(direction("3b", v).bind(spec)(acts), (a[:, 4] - 2 * a[:, 9]).mean((1, 2)))
    fam = neuron("mixed3b/curves").bind(spec)
    assert fam.batch_size() == 19


def test_diversity_of_identical_images_is_minus_one_over_n_times_n_minus_1():
    a = torch.rand(1, 8, 4, 4).repeat(3, 1, 1, 1)
    d = diversity("mixed3b")(Acts({"mixed3b": a}))
    torch.testing.assert_close(d, torch.full((3,), -2 / 3))
    b = torch.zeros(2, 8, 4, 4)
    b[0, 0], b[1, 1] = 1, 1  # orthogonal Gram matrices
    torch.testing.assert_close(diversity("mixed3b")(Acts({"mixed3b": b})), torch.zeros(2))


def test_bad_units_fail_before_compute():
    from circuits.spec import get_spec

    spec = get_spec("inceptionv1_caffe")
    with pytest.raises(IndexError, match="0..479"):
        neuron("3b:480").bind(spec)
    with pytest.raises(KeyError, match="valid families"):
        neuron("mixed3b/nope").bind(spec)
    with pytest.raises(ValueError, match="spans"):
        neuron(["3b:1", "3a:2"]).bind(spec)


# ----------------------------------------------------------------------------- render
@pytest.fixture(scope="module")
def random_model():
    torch.manual_seed(0)
    return InceptionV1("inceptionv1_caffe")


def test_render_bitwise_deterministic_and_cached(random_model, tmp_path, monkeypatch):
    monkeypatch.setenv("CIRCUITS_CACHE", str(tmp_path))
    s = VisSettings(steps=3, seed=5)
    obj = neuron(["3a:1", "3a:2", "3a:70"])
    r1 = render(random_model, obj, settings=s, cache=False)
    r2 = render(random_model, obj, settings=s, cache=True)
    assert r1.path == "cone" and r1.images.shape == (3, 3, 64, 64) and r1.history.shape == (3, 3)
    assert torch.equal(r1.images, r2.images)
    r3 = render(random_model, obj, settings=s, cache=True)
    assert r3.cached and torch.equal(r3.images, r1.images) and (r3.history == r1.history).all()
    assert not torch.equal(render(random_model, obj, settings=VisSettings(steps=3, seed=6), cache=False).images,
                           r1.images)
    assert all(p.requires_grad for p in random_model.parameters())  # restored


def test_render_splitting_the_batch_changes_nothing(random_model):
    s = VisSettings(steps=2, seed=1)
    obj = neuron(["3a:1", "3a:2", "3a:3"])
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = render(random_model, obj, settings=s, cache=False)
        torch.set_num_threads(2)
        two = render(random_model, obj, settings=s, cache=False)
    finally:
        torch.set_num_threads(n)
    torch.testing.assert_close(one.images, two.images, rtol=0, atol=1e-6)


def test_cli_rejects_bad_units_before_loading(capsys, tmp_path):
    from studies.cli import main

    assert main(["vis", "3b:480", "--out", str(tmp_path / "o")]) == 2
    assert "0..479" in capsys.readouterr().err
    assert main(["vis", "mixed3b/nope", "--out", str(tmp_path / "o")]) == 2
    assert "valid families" in capsys.readouterr().err
    assert main(["vis", "3b:1", "--steps", "0", "--out", str(tmp_path / "o")]) == 2


def test_tune_refuses_bad_vis_steps_before_compute(random_model, tmp_path):
    from studies.tune import tune_report

    with pytest.raises(ValueError, match="vis_steps"):
        tune_report(random_model, "3a:1", tmp_path / "t", vis_steps=-1, log=lambda m: None)
    assert not (tmp_path / "t").exists()


def test_graph_page_carries_family_thumbnails(tmp_path):
    import networkx as nx

    from studies.report.circuit_plots import family_graph_html
    from studies.report.vis_plots import montage_data_uri

    uri = montage_data_uri([torch.rand(3, 20, 20) for _ in range(5)])
    assert uri.startswith("data:image/png;base64,")
    fg = nx.DiGraph(layers="mixed3a")
    fg.add_node("mixed3a/curves", layer="mixed3a", size=5, kind="curve")
    page = family_graph_html(fg, tmp_path / "g.html", thumbnails={"mixed3a/curves": uri}).read_text()
    assert uri in page and "'thumb'" in page


def test_cached_vis_reports_when_it_was_computed_not_as_now(random_model, tmp_path, monkeypatch, capsys):
    """A cached result printed its old optimisation time as if it had just been spent; now the
    line says it is cached and when, and how long, it was computed."""
    import json

    from studies.cli.vis import timing, write_vis
    from studies.measure.featurevis.render import vis_cache_dir

    monkeypatch.setenv("CIRCUITS_CACHE", str(tmp_path / "cache"))
    units = [u for u in __import__("circuits.catalog", fromlist=["catalog"]).catalog(random_model)
             .resolve(["mixed3a/curves"])][:2]
    s = VisSettings(steps=2, seed=1, size=64)
    first = write_vis(random_model, units, tmp_path / "a", s, log=lambda m: None)
    assert not first["cached"] and timing(first) == f"{first['seconds_optimising']} s optimising"
    (meta,) = [json.loads(p.read_text()) for p in vis_cache_dir().glob("*.json")]
    assert meta["computed_at"].endswith("+00:00") and len(meta["computed_at"]) == 25
    again = write_vis(random_model, units, tmp_path / "b", s, log=lambda m: None)
    when = meta["computed_at"][:16].replace("T", " ")
    assert again["cached"] and again["computed_at"] == [meta["computed_at"]]
    assert timing(again) == f"cached, computed in {first['seconds_optimising']} s on {when} UTC"
