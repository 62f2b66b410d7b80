"""Weights: BVLC caffejs import and verification, the canonical safetensors file, Lucid's
``.pth`` layouts (lucent, captum) and the ``circuits weights`` command line.

Uses the real caffejs files (``$CIRCUITS_DATA/bvlc_googlenet``); tests that damage files work
on copies in ``tmp_path``. Lucid's weights are not available here, so its two layouts are
checked with synthetic state dicts carrying the exact public key names and shapes.
"""

from __future__ import annotations

import math
import time
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

import circuits.weights as W
from circuits import WeightsError, get_spec, load_model
from circuits.spec import MIXED_LAYERS
from studies.cli import main
from studies.cli.common import device as _device

N_PARAMS = 6_998_552
N_TENSORS = 116  # 58 layers x (weight, bias)


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh, empty CIRCUITS_CACHE for one test."""
    d = tmp_path / "cache"
    monkeypatch.setenv("CIRCUITS_CACHE", str(d))
    return d


def _read_canonical(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())


def test_caffe_layer_names_cover_every_parameter():
    spec = get_spec("inceptionv1_caffe")
    names = W.caffe_layer_names(spec)
    assert names["mixed3a.b3x3_bottleneck.conv"] == "inception_3a/3x3_reduce"
    assert names["mixed5b.bpool_reduce.conv"] == "inception_5b/pool_proj"
    assert names["mixed4e.b5x5_bottleneck.conv"] == "inception_4e/5x5_reduce"
    assert {f"{m}.{p}" for m in names for p in ("weight", "bias")} == set(W.expected_shapes(spec))


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        W.read_caffejs(tmp_path / "nowhere")


@pytest.mark.parametrize("content", [np.random.default_rng(0).bytes(4096), b"", b"\x08" + b"\x00" * 7 + b"{garbage"])
def test_garbage_safetensors_is_an_error(tmp_path, content):
    bad = tmp_path / "garbage.safetensors"
    bad.write_bytes(content)
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        W.load_safetensors(bad, "inceptionv1_caffe")
    with pytest.raises(WeightsError):
        load_model("inceptionv1_caffe", weights=bad)


# --------------------------------------------------------------------------- Lucid .pth layouts
LUCID = get_spec("inceptionv1")

#: Written out by hand from lucent's InceptionV1.py and captum's inception_v1.py (not derived
#: from the key maps under test): their name → (our parameter, shape).
HAND_MAPPED = {
    "lucent": {
        "conv2d0_pre_relu_conv.weight": ("conv2d0.conv.weight", (64, 3, 7, 7)),
        "conv2d2_pre_relu_conv.bias": ("conv2d2.conv.bias", (192,)),
        "mixed4a_3x3_pre_relu_conv.weight": ("mixed4a.b3x3.conv.weight", (204, 96, 3, 3)),
        "mixed4c_1x1_pre_relu_conv.weight": ("mixed4c.b1x1.conv.weight", (128, 512, 1, 1)),
        "mixed4c_3x3_bottleneck_pre_relu_conv.weight": ("mixed4c.b3x3_bottleneck.conv.weight", (128, 512, 1, 1)),
        "mixed5a_5x5_bottleneck_pre_relu_conv.weight": ("mixed5a.b5x5_bottleneck.conv.weight", (48, 832, 1, 1)),
        "mixed5b_pool_reduce_pre_relu_conv.weight": ("mixed5b.bpool_reduce.conv.weight", (128, 832, 1, 1)),
        "mixed3b_5x5_pre_relu_conv.weight": ("mixed3b.b5x5.conv.weight", (96, 32, 5, 5)),
        "softmax2_pre_activation_matmul.weight": ("classifier.weight", (1008, 1024)),
        "softmax2_pre_activation_matmul.bias": ("classifier.bias", (1008,)),
    },
    "captum": {
        "conv1.weight": ("conv2d0.conv.weight", (64, 3, 7, 7)),
        "conv3.bias": ("conv2d2.conv.bias", (192,)),
        "mixed4a.conv_3x3.weight": ("mixed4a.b3x3.conv.weight", (204, 96, 3, 3)),
        "mixed4c.conv_1x1.weight": ("mixed4c.b1x1.conv.weight", (128, 512, 1, 1)),
        "mixed4c.conv_3x3_reduce.weight": ("mixed4c.b3x3_bottleneck.conv.weight", (128, 512, 1, 1)),
        "mixed5a.conv_5x5_reduce.weight": ("mixed5a.b5x5_bottleneck.conv.weight", (48, 832, 1, 1)),
        "mixed5b.pool_proj.weight": ("mixed5b.bpool_reduce.conv.weight", (128, 832, 1, 1)),
        "mixed3b.conv_5x5.weight": ("mixed3b.b5x5.conv.weight", (96, 32, 5, 5)),
        "fc.weight": ("classifier.weight", (1008, 1024)),
        "fc.bias": ("classifier.bias", (1008,)),
    },
}
#: captum's auxiliary heads (AuxBranch): present in its training layout, dropped on load.
CAPTUM_AUX = {
    "aux1.loss_conv.weight": (128, 508, 1, 1),
    "aux1.loss_fc.weight": (1024, 2048),
    "aux2.loss_conv.bias": (128,),
    "aux2.loss_classifier.weight": (1008, 1024),
}


def _key_map(layout: str) -> dict[str, str]:
    return (W.lucent_key_map if layout == "lucent" else W.captum_key_map)(LUCID)


def _synthetic_lucid(layout: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random, distinct tensors under the layout's own names and the checkpoint's shapes;
    weights scaled by 1/sqrt(fan_in) so a forward pass stays finite."""
    g = torch.Generator().manual_seed(seed)
    shapes = W.expected_shapes(LUCID)
    sd = {}
    for theirs, ours in _key_map(layout).items():
        shape = shapes[ours]
        scale = 1 / math.sqrt(math.prod(shape[1:])) if len(shape) > 1 else 0.1
        sd[theirs] = torch.randn(shape, generator=g) * scale
    if layout == "captum":
        for k, shape in CAPTUM_AUX.items():
            sd[k] = torch.randn(shape, generator=g)
    return sd


def test_lucid_key_maps_are_complete_and_match_hand_written_names():
    shapes = W.expected_shapes(LUCID)
    assert len(shapes) == N_TENSORS
    for layout in ("lucent", "captum"):
        kmap = _key_map(layout)
        assert len(kmap) == N_TENSORS
        assert set(kmap.values()) == set(shapes)  # one-to-one onto our parameters
        for theirs, (ours, shape) in HAND_MAPPED[layout].items():
            assert kmap[theirs] == ours
            assert shapes[ours] == shape
    lucent = W.lucent_key_map(LUCID)
    for layer in MIXED_LAYERS:
        for conv in ("1x1", "3x3_bottleneck", "3x3", "5x5_bottleneck", "5x5", "pool_reduce"):
            assert f"{layer}_{conv}_pre_relu_conv.weight" in lucent
    # BVLC's count, adjusted by hand for inception5h's widths: mixed4a 3x3 204 (not 208) outputs,
    # so mixed4b sees 508 inputs; mixed5a 5x5 bottleneck 48 (not 32); 1008 classes (not 1000)
    lucid_params = (N_PARAMS - 4 * (96 * 9 + 1) - 4 * (160 + 112 + 24 + 64)
                    + 16 * (832 + 1) + 16 * 25 * 128 + 8 * (1024 + 1))
    assert lucid_params == 7_066_380
    assert sum(math.prod(s) for s in shapes.values()) == lucid_params


@pytest.mark.parametrize("layout", ["lucent", "captum"])
def test_lucid_pth_loads_every_parameter_in_place(tmp_path, layout):
    sd = _synthetic_lucid(layout, seed=1 if layout == "lucent" else 2)
    path = tmp_path / f"inception5h_{layout}.pth"
    torch.save(sd, path)
    model = load_model("inceptionv1", weights=path)
    ours = model.state_dict()
    assert set(ours) == set(W.expected_shapes(LUCID))
    kmap = _key_map(layout)
    for theirs, our_key in kmap.items():
        assert torch.equal(ours[our_key], sd[theirs]), (theirs, our_key)
    for theirs, (our_key, _) in HAND_MAPPED[layout].items():
        assert torch.equal(ours[our_key], sd[theirs]), theirs
    # every tensor is distinct, so equality above also means nothing was swapped
    assert len({float(t.flatten()[0]) for t in sd.values()}) == len(sd)
    assert torch.equal(model.mixed4c.b1x1.conv.weight, sd[next(k for k, v in kmap.items() if v == "mixed4c.b1x1.conv.weight")])
    assert not torch.equal(model.mixed4c.b1x1.conv.weight, model.mixed4c.b3x3_bottleneck.conv.weight)
    if layout == "captum":
        assert not any(k.startswith("aux") for k in ours)

    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    logits = model(x)
    assert logits.shape == (1, 1008)
    assert torch.isfinite(logits).all()
    acts = model.run(x, ["mixed4a"])
    assert acts["mixed4a"].shape == (1, 508, 14, 14)


def test_lucid_import_to_canonical_and_load_from_cache(tmp_path, cache):
    sd = _synthetic_lucid("captum", seed=3)
    pth = tmp_path / "inception5h.pth"
    torch.save(sd, pth)
    out = W.import_lucid(pth)
    assert out == cache / "inceptionv1.safetensors"
    _, meta = _read_canonical(out)
    assert meta["checkpoint"] == "inceptionv1" and meta["source"] == "pth:inception5h.pth"
    model = load_model("lucid")  # alias; found in the cache
    assert model.weights_source == str(out)
    assert torch.equal(model.classifier.weight, sd["fc.weight"])
    assert torch.equal(model.mixed5a.b5x5_bottleneck.conv.bias, sd["mixed5a.conv_5x5_reduce.bias"])


def test_lucid_pth_missing_key_is_an_error_naming_it(tmp_path):
    sd = _synthetic_lucid("lucent")
    del sd["mixed4c_5x5_pre_relu_conv.bias"]
    path = tmp_path / "missing.pth"
    torch.save(sd, path)
    with pytest.raises(WeightsError) as e:
        load_model("inceptionv1", weights=path)
    assert "mixed4c_5x5_pre_relu_conv.bias" in str(e.value) and "lucent" in str(e.value)


def test_lucid_pth_wrong_shape_is_an_error_naming_key_and_shapes(tmp_path):
    sd = _synthetic_lucid("captum")
    sd["mixed4a.conv_3x3.weight"] = torch.zeros(208, 96, 3, 3)  # BVLC's width, not inception5h's
    path = tmp_path / "shape.pth"
    torch.save(sd, path)
    with pytest.raises(WeightsError) as e:
        W.load_lucid_pth(path)
    msg = str(e.value)
    assert "mixed4a.conv_3x3.weight" in msg and "(208, 96, 3, 3)" in msg and "(204, 96, 3, 3)" in msg


def test_lucid_pth_unexpected_key_is_an_error(tmp_path):
    sd = _synthetic_lucid("lucent")
    sd["softmax0_pre_activation_matmul.weight"] = torch.zeros(3)
    path = tmp_path / "extra.pth"
    torch.save(sd, path)
    with pytest.raises(WeightsError, match="softmax0_pre_activation_matmul.weight"):
        W.load_lucid_pth(path)


class _NotAllowed:
    pass


@pytest.mark.parametrize(
    "obj, message",
    [
        ([torch.zeros(3)], "expected a state dict, found list"),
        (torch.zeros(3), "expected a state dict, found Tensor"),
        ({"weight": torch.zeros(3)}, "not an inception5h state dict"),
        ({"x": _NotAllowed()}, "could not be read"),  # weights_only=True refuses arbitrary objects
    ],
)
def test_lucid_pth_that_is_not_a_state_dict(tmp_path, obj, message):
    path = tmp_path / "bad.pth"
    torch.save(obj, path)
    with pytest.raises(WeightsError, match=message):
        load_model("inceptionv1", weights=path)


def test_lucid_pth_non_tensor_value_and_garbage(tmp_path):
    sd = _synthetic_lucid("lucent")
    sd["conv2d1_pre_relu_conv.bias"] = 3
    path = tmp_path / "value.pth"
    torch.save(sd, path)
    with pytest.raises(WeightsError, match="conv2d1_pre_relu_conv.bias is a int"):
        W.load_lucid_pth(path)
    path = tmp_path / "garbage.pth"
    path.write_bytes(np.random.default_rng(1).bytes(2048))
    with pytest.raises(WeightsError, match="could not be read"):
        W.load_lucid_pth(path)


def test_pth_for_the_bvlc_checkpoint_is_refused(tmp_path):
    path = tmp_path / "x.pth"
    torch.save(_synthetic_lucid("lucent"), path)
    with pytest.raises(WeightsError, match="inceptionv1 only"):
        load_model("inceptionv1_caffe", weights=path)


def test_missing_weights_say_how_to_get_them(cache, monkeypatch):
    monkeypatch.delenv("CIRCUITS_DATA")
    with pytest.raises(WeightsError) as e:
        load_model("inceptionv1_caffe")
    assert "circuits weights import --from" in str(e.value)
    with pytest.raises(WeightsError, match="--checkpoint inceptionv1 --from"):
        load_model("inceptionv1")
    with pytest.raises(KeyError, match="valid: inceptionv1, inceptionv1_caffe"):
        load_model("resnet50")


# --------------------------------------------------------------------------- fetch (offline)
def _no_network(*args, **kwargs):
    raise urllib.error.URLError("no network in tests")


def test_fetch_fails_cleanly_without_network(cache, tmp_path, monkeypatch):
    calls = []

    def urlopen(url, timeout=None):
        calls.append((url, timeout))
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(W.urllib.request, "urlopen", urlopen)
    with pytest.raises(WeightsError) as e:
        W.fetch("inceptionv1_caffe", tmp_path / "dl", timeout=5)
    assert "--from" in str(e.value) and "no network in tests" in str(e.value)
    assert calls[0][0].startswith(W.CAFFEJS_URL + "weights/") and calls[0][1] == 5
    assert W.CAFFEJS_COMMIT in calls[0][0]
    assert not W.canonical_path("inceptionv1_caffe").exists()


# --------------------------------------------------------------------------- command line
def test_cli_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == "circuits 0.1.0"
    assert main([]) == 2
    assert "weights" in capsys.readouterr().err
    assert main(["weights"]) == 2
    err = capsys.readouterr().err
    assert all(a in err for a in ("import", "verify", "where", "fetch"))


def test_cli_where(cache, capsys):
    assert main(["weights", "where"]) == 0
    out = capsys.readouterr().out
    assert f"cache: {cache}" in out
    assert f"inceptionv1_caffe: {cache / 'inceptionv1_caffe.safetensors'} (missing)" in out
    assert f"inceptionv1: {cache / 'inceptionv1.safetensors'} (missing)" in out
    assert f"CIRCUITS_CACHE={cache}" in out
    assert "CIRCUITS_DATA=" in out


def test_cli_import_and_verify_lucid(cache, tmp_path, capsys):
    sd = _synthetic_lucid("lucent", seed=4)
    pth = tmp_path / "inception5h.pth"
    torch.save(sd, pth)
    assert main(["weights", "import", "--checkpoint", "inceptionv1", "--from", str(pth)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {cache / 'inceptionv1.safetensors'}" in out
    assert main(["weights", "verify", "--checkpoint", "inception5h", "--from", str(pth)]) == 0
    out = capsys.readouterr().out
    assert "verified: 3 OK" in out and "matches" in out
    sd["conv2d0_pre_relu_conv.bias"][0] += 1.0
    other = tmp_path / "other.pth"
    torch.save(sd, other)
    assert main(["weights", "verify", "--checkpoint", "inceptionv1", "--from", str(other)]) == 1
    assert "does not hold the tensors of" in capsys.readouterr().err
    assert main(["weights", "import", "--checkpoint", "inceptionv1", "--from", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_cli_fetch_fails_with_exit_2_and_says_use_from(cache, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(W.urllib.request, "urlopen", _no_network)
    t0 = time.perf_counter()
    assert main(["weights", "fetch", "inceptionv1_caffe", "--dest", str(tmp_path / "dl")]) == 2
    assert time.perf_counter() - t0 < 30
    err = capsys.readouterr().err
    assert err.startswith("circuits: error: could not download")
    assert "--from" in err and "Traceback" not in err
    assert main(["weights", "fetch", "inceptionv1"]) == 2
    assert "--checkpoint inceptionv1 --from" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["weights", "fetch", "googlenet_v9"],
        ["weights", "import", "--checkpoint", "googlenet_v9"],
        ["weights", "verify", "--checkpoint", "googlenet_v9"],
        ["weights", "where", "--checkpoint", "googlenet_v9"],
    ],
)
def test_cli_bad_checkpoint_name(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "unknown checkpoint 'googlenet_v9'" in err
    assert "valid: inceptionv1, inceptionv1_caffe" in err


def test_cli_user_errors_have_no_traceback(cache, tmp_path, capsys):
    assert main(["weights", "import", "--from", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err == f"circuits: error: BVLC weights folder {tmp_path / 'nowhere'} does not exist " \
                  "(expected a folder with caffejs_weights/)\n"
    garbage = tmp_path / "g.pth"
    garbage.write_bytes(b"not a pickle")
    assert main(["weights", "import", "--checkpoint", "inceptionv1", "--from", str(garbage)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"circuits: error: {garbage}: could not be read") and "Traceback" not in err
    with pytest.raises(WeightsError):  # --traceback re-raises
        main(["--traceback", "weights", "import", "--from", str(tmp_path / "nowhere")])


def test_device_helper():
    from argparse import Namespace

    assert _device(Namespace()) == torch.device("cpu")
    assert _device(Namespace(device=None)) == torch.device("cpu")
    assert _device(Namespace(device="cpu")) == torch.device("cpu")
    auto = _device(Namespace(device="auto"))
    assert auto.type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="not a device"):
        _device(Namespace(device="quantum"))
    if torch.cuda.is_available():
        assert _device(Namespace(device="cuda")).type == "cuda"
    else:
        with pytest.raises(ValueError, match="CUDA is not available"):
            _device(Namespace(device="cuda"))
