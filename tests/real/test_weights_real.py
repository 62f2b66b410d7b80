"""Weights: BVLC caffejs import and verification, the canonical safetensors file, Lucid's
``.pth`` layouts (lucent, captum) and the ``circuits weights`` command line.

Uses the real caffejs files (``$CIRCUITS_DATA/bvlc_googlenet``); tests that damage files work
on copies in ``tmp_path``. Lucid's weights are not available here, so its two layouts are
checked with synthetic state dicts carrying the exact public key names and shapes.
"""

from __future__ import annotations

import shutil
import struct
import time
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import circuits.weights as W
from circuits import WeightsError, load_model
from studies.cli import main

N_PARAMS = 6_998_552
N_TENSORS = 116  # 58 layers x (weight, bias)
CONV1 = "caffejs_weights/conv1/7x7_s2_filter.bin"


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def bvlc_dir(data_dir) -> Path:
    return data_dir / "bvlc_googlenet"


@pytest.fixture(scope="module")
def caffe_state(bvlc_dir) -> dict[str, torch.Tensor]:
    return W.read_caffejs(bvlc_dir)


@pytest.fixture(scope="module")
def canonical_file(tmp_path_factory, bvlc_dir) -> Path:
    """A canonical file imported once from the real folder (tests copy it before changing it)."""
    return W.import_bvlc(bvlc_dir, tmp_path_factory.mktemp("canonical") / "inceptionv1_caffe.safetensors")


@pytest.fixture()
def bvlc_copy(tmp_path, bvlc_dir) -> Path:
    """A writable copy of the caffejs folder (28 MB)."""
    dst = tmp_path / "bvlc_googlenet"
    shutil.copytree(bvlc_dir, dst)
    return dst


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh, empty CIRCUITS_CACHE for one test."""
    d = tmp_path / "cache"
    monkeypatch.setenv("CIRCUITS_CACHE", str(d))
    return d


def _read_canonical(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())


# --------------------------------------------------------------------------- BVLC import
def test_import_matches_read_caffejs_bitwise(canonical_file, caffe_state):
    loaded = W.load_safetensors(canonical_file, "inceptionv1_caffe")
    assert set(loaded) == set(caffe_state)
    assert len(loaded) == N_TENSORS
    for k, t in caffe_state.items():
        assert loaded[k].dtype == torch.float32
        assert loaded[k].shape == t.shape, k
        assert loaded[k].numpy().tobytes() == t.numpy().tobytes(), k
    assert sum(t.numel() for t in loaded.values()) == N_PARAMS
    assert tuple(loaded["conv2d0.conv.weight"].shape) == (64, 3, 7, 7)
    assert tuple(loaded["classifier.weight"].shape) == (1000, 1024)
    assert tuple(loaded["mixed4a.b3x3.conv.weight"].shape) == (208, 96, 3, 3)
    _, meta = _read_canonical(canonical_file)
    assert meta["checkpoint"] == "inceptionv1_caffe"
    assert meta["source"] == f"caffejs@{W.CAFFEJS_COMMIT}"
    assert meta["digest"] == W.state_digest(caffe_state)
    # the label lists beside the source folder are copied (checksums matched) into <dest>/labels
    labels = canonical_file.parent / "labels"
    assert sorted(p.name for p in labels.iterdir()) == ["labels_wnid_index_name.txt", "synset_words.txt"]
    assert len((labels / "synset_words.txt").read_text().splitlines()) == 1000


def test_pinned_checksums_match_the_data_folders_sha256sums(bvlc_dir):
    pinned = W.pinned_checksums()
    theirs = {}
    for line in (bvlc_dir / "SHA256SUMS").read_text().splitlines():
        digest, rel = line.split(maxsplit=1)
        theirs[rel.strip().removeprefix("./").lstrip("*")] = digest
    assert pinned == theirs
    assert len(pinned) == N_TENSORS + 1  # + deploy.prototxt


def test_caffejs_filter_layout_is_out_kh_kw_in(bvlc_dir, caffe_state):
    raw = (bvlc_dir / CONV1).read_bytes()
    assert len(raw) == 64 * 7 * 7 * 3 * 4
    w = caffe_state["conv2d0.conv.weight"]  # (out, in, kh, kw)
    for o, i, kh, kw in [(0, 0, 0, 0), (5, 2, 1, 4), (63, 1, 6, 0), (17, 0, 3, 5), (40, 2, 6, 6)]:
        flat = ((o * 7 + kh) * 7 + kw) * 3 + i  # caffejs: (out, kh, kw, in), row-major
        (value,) = struct.unpack_from("<f", raw, 4 * flat)
        assert w[o, i, kh, kw].item() == value, (o, i, kh, kw)
    arr = np.frombuffer(raw, dtype="<f4")
    assert np.array_equal(w.numpy(), arr.reshape(64, 7, 7, 3).transpose(0, 3, 1, 2))
    # the test can tell the layouts apart: reading the bytes as (out, in, kh, kw) gives other numbers
    assert not np.array_equal(w.numpy(), arr.reshape(64, 3, 7, 7))

    raw = (bvlc_dir / "caffejs_weights/inception_4a/3x3_filter.bin").read_bytes()
    w = caffe_state["mixed4a.b3x3.conv.weight"]  # (208, 96, 3, 3)
    o, i, kh, kw = 200, 90, 2, 0
    (value,) = struct.unpack_from("<f", raw, 4 * (((o * 3 + kh) * 3 + kw) * 96 + i))
    assert w[o, i, kh, kw].item() == value

    raw = (bvlc_dir / "caffejs_weights/loss3/classifier_filter.bin").read_bytes()
    w = caffe_state["classifier.weight"]  # (1000, 1024), no transposition
    for j, k in [(0, 0), (999, 1023), (123, 456)]:
        (value,) = struct.unpack_from("<f", raw, 4 * (j * 1024 + k))
        assert w[j, k].item() == value
    raw = (bvlc_dir / "caffejs_weights/loss3/classifier_bias.bin").read_bytes()
    assert caffe_state["classifier.bias"][999].item() == struct.unpack_from("<f", raw, 4 * 999)[0]


# --------------------------------------------------------------------------- damaged BVLC files
def test_corrupt_byte_is_a_checksum_error_naming_the_file(bvlc_copy):
    rel = "caffejs_weights/inception_4c/3x3_filter.bin"
    p = bvlc_copy / rel
    data = bytearray(p.read_bytes())
    data[1000] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(WeightsError) as e:
        W.read_caffejs(bvlc_copy)
    assert "inception_4c/3x3_filter.bin" in str(e.value)
    assert "checksum" in str(e.value)
    with pytest.raises(WeightsError, match="checksum"):
        W.import_bvlc(bvlc_copy, bvlc_copy.parent / "out.safetensors")
    assert not (bvlc_copy.parent / "out.safetensors").exists()


def test_truncated_file_is_an_error_naming_it(bvlc_copy):
    p = bvlc_copy / "caffejs_weights/inception_5b/1x1_bias.bin"
    size = p.stat().st_size
    with open(p, "r+b") as f:
        f.truncate(size - 4)
    with pytest.raises(WeightsError) as e:
        W.read_caffejs(bvlc_copy)
    assert "inception_5b/1x1_bias.bin" in str(e.value)
    assert f"size {size - 4} bytes" in str(e.value)


def test_deleted_file_is_an_error_naming_it(bvlc_copy):
    (bvlc_copy / "caffejs_weights/conv2/3x3_reduce_bias.bin").unlink()
    with pytest.raises(WeightsError) as e:
        W.read_caffejs(bvlc_copy)
    assert "conv2/3x3_reduce_bias.bin" in str(e.value)
    assert "missing" in str(e.value)


def test_changed_prototxt_is_an_error(bvlc_copy):
    p = bvlc_copy / "deploy.prototxt"
    p.write_text(p.read_text().replace("num_output: 64", "num_output: 65", 1))
    with pytest.raises(WeightsError, match=r"deploy\.prototxt"):
        W.read_caffejs(bvlc_copy)


# --------------------------------------------------------------------------- damaged canonical files
def test_tampered_canonical_file_fails_its_digest(canonical_file, tmp_path):
    state, meta = _read_canonical(canonical_file)
    state["mixed4b.b1x1.conv.bias"][3] += 1e-3
    bad = tmp_path / "tampered.safetensors"
    save_file(state, str(bad), metadata=meta)
    with pytest.raises(WeightsError) as e:
        W.load_safetensors(bad, "inceptionv1_caffe")
    assert "digest" in str(e.value) and str(bad) in str(e.value)
    # without verification the (tampered) values load as written
    loaded = W.load_safetensors(bad, "inceptionv1_caffe", verify=False)
    assert torch.equal(loaded["mixed4b.b1x1.conv.bias"], state["mixed4b.b1x1.conv.bias"])
    with pytest.raises(WeightsError, match="digest"):
        load_model("inceptionv1_caffe", weights=bad)


def test_wrong_shape_in_canonical_file_names_key_and_shapes(canonical_file, tmp_path):
    state, meta = _read_canonical(canonical_file)
    state["mixed4a.b3x3.conv.weight"] = torch.zeros(208, 96, 1, 1)
    bad = tmp_path / "shape.safetensors"
    save_file(state, str(bad), metadata=meta)
    with pytest.raises(WeightsError) as e:
        W.load_safetensors(bad, "inceptionv1_caffe")
    msg = str(e.value)
    assert "mixed4a.b3x3.conv.weight" in msg
    assert "(208, 96, 1, 1)" in msg and "(208, 96, 3, 3)" in msg


def test_missing_and_extra_keys_in_canonical_file(canonical_file, tmp_path):
    state, meta = _read_canonical(canonical_file)
    del state["conv2d1.conv.bias"]
    state["extra.weight"] = torch.zeros(2)
    bad = tmp_path / "keys.safetensors"
    save_file(state, str(bad), metadata=meta)
    with pytest.raises(WeightsError) as e:
        W.load_safetensors(bad, "inceptionv1_caffe")
    assert "conv2d1.conv.bias" in str(e.value) and "extra.weight" in str(e.value)


def test_canonical_file_of_the_other_checkpoint_is_refused(canonical_file):
    with pytest.raises(WeightsError, match="expected 'inceptionv1'"):
        W.load_safetensors(canonical_file, "inceptionv1")


def test_load_model_from_canonical_and_from_folder_agree(canonical_file, bvlc_dir, caffe_state):
    a = load_model("inceptionv1_caffe", weights=canonical_file)
    b = load_model("bvlc_googlenet", weights=bvlc_dir)
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(caffe_state)
    for k, t in caffe_state.items():
        assert torch.equal(sa[k], t) and torch.equal(sb[k], t), k
    assert not any(p.requires_grad for p in a.parameters())
    assert a.weights_source == str(canonical_file)


def test_resolve_weights_imports_from_circuits_data(cache, caffe_state):
    path = W.canonical_path("inceptionv1_caffe")
    assert not path.exists()
    model = load_model("inceptionv1_caffe")
    assert path.is_file() and path.parent == cache
    assert torch.equal(_read_canonical(path)[0]["conv2d0.conv.weight"], caffe_state["conv2d0.conv.weight"])
    assert torch.equal(model.conv2d0.conv.weight, caffe_state["conv2d0.conv.weight"])


# --------------------------------------------------------------------------- fetch (offline)
def _no_network(*args, **kwargs):
    raise urllib.error.URLError("no network in tests")


def test_fetch_uses_files_already_present(cache, bvlc_copy, monkeypatch, caffe_state):
    monkeypatch.setattr(W.urllib.request, "urlopen", _no_network)
    out = W.fetch("inceptionv1_caffe", bvlc_copy)  # every pinned file is there: nothing to download
    assert out == W.canonical_path("inceptionv1_caffe")
    loaded = W.load_safetensors(out, "inceptionv1_caffe")
    assert all(torch.equal(loaded[k], t) for k, t in caffe_state.items())


def test_cli_import_where_verify(cache, bvlc_dir, capsys, caffe_state):
    t0 = time.perf_counter()
    assert main(["weights", "import", "--from", str(bvlc_dir)]) == 0
    out = capsys.readouterr().out
    path = cache / "inceptionv1_caffe.safetensors"
    assert f"wrote {path}" in out
    digest = W.state_digest(caffe_state)
    assert f"digest {digest}" in out and "6,998,552 parameters" in out
    assert f"sha256 {W.sha256_file(path)}" in out
    assert time.perf_counter() - t0 < 60

    assert main(["weights", "where", "--checkpoint", "bvlc_googlenet"]) == 0
    assert f"inceptionv1_caffe: {path} (exists)" in capsys.readouterr().out

    assert main(["weights", "verify"]) == 0
    out = capsys.readouterr().out
    assert f"OK {path} digest {digest}" in out and "verified: 1 OK" in out

    assert main(["weights", "verify", "--from", str(bvlc_dir)]) == 0
    out = capsys.readouterr().out
    assert "OK caffejs_weights/conv1/7x7_s2_filter.bin" in out and "OK deploy.prototxt" in out
    assert f"OK {path} matches {bvlc_dir}" in out
    assert "verified: 119 OK" in out  # 117 source files + canonical digest + canonical == source


def test_cli_import_defaults_to_circuits_data(cache, capsys, monkeypatch, data_dir, caffe_state):
    assert main(["weights", "import", "--weights", str(cache / "x.safetensors")]) == 0
    assert f"imported inceptionv1_caffe from {data_dir / 'bvlc_googlenet'}" in capsys.readouterr().out
    written, _ = _read_canonical(cache / "x.safetensors")  # the file holds the real weights, bitwise
    assert set(written) == set(caffe_state)
    assert all(written[k].numpy().tobytes() == t.numpy().tobytes() for k, t in caffe_state.items())
    monkeypatch.delenv("CIRCUITS_DATA")
    assert main(["weights", "import"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("circuits: error:") and "--from" in err and "Traceback" not in err


def test_cli_verify_failures_exit_1(cache, tmp_path, bvlc_copy, canonical_file, capsys):
    assert main(["weights", "verify"]) == 1  # nothing imported into this cache
    assert "circuits weights import" in capsys.readouterr().err

    state, meta = _read_canonical(canonical_file)
    state["classifier.bias"][0] = 42.0
    bad = tmp_path / "bad.safetensors"
    save_file(state, str(bad), metadata=meta)
    assert main(["weights", "verify", "--weights", str(bad)]) == 1
    assert "digest" in capsys.readouterr().err

    p = bvlc_copy / "caffejs_weights/inception_3b/pool_proj_filter.bin"
    p.write_bytes(p.read_bytes()[:-1] + b"\x00")
    assert main(["weights", "verify", "--weights", str(canonical_file), "--from", str(bvlc_copy)]) == 1
    captured = capsys.readouterr()
    assert "inception_3b/pool_proj_filter.bin" in captured.err and "checksum" in captured.err
    assert "OK caffejs_weights/conv1/7x7_s2_bias.bin" in captured.out  # files before it passed
