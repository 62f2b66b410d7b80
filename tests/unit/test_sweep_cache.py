"""studies.run.cache: entries are data, verified (issue 13, kind 2) — no pickle, a checksum over
every byte; a bad entry is reported by path, discarded and treated as missing."""

import os
import pickle
import random
import warnings

import numpy as np
import pandas as pd
import pytest

from studies.run.cache import CacheWarning, encode_entry, entry_path, read_entry, write_entry

KEY = "a" * 64


def _entry(key=KEY, index=3) -> dict:
    """An entry as the sweep writes one (the columns of ClassificationResult.per_image)."""
    rng = np.random.default_rng(0)
    n = 6
    top5 = rng.integers(0, 1000, (n, 5))
    per_image = pd.DataFrame({
        "path": [f"/data/n0144{i}_x.JPEG" for i in range(n)], "wnid": [f"n0144{i}" for i in range(n)],
        "label": top5[:, 1].astype(np.int64), "pred": top5[:, 0].astype(np.int64),
        "pred_wnid": [f"n0{p:07d}" for p in top5[:, 0]], "correct_top1": top5[:, 0] == top5[:, 1],
        "correct_top5": np.ones(n, bool), "top5": [r.tolist() for r in top5],
        "logit_label": rng.normal(size=n).astype(np.float64),
    })
    skipped = pd.DataFrame({"path": ["/data/bad.JPEG"], "reason": ["cannot decode"]})
    return {"key": key, "kind": "images", "index": index, "variant": "3b-zero", "plan": '{"edits": []}',
            "per_image": per_image, "skipped": skipped, "seconds": 1.25}


def _same(a: dict, b: dict) -> None:
    assert {k: v for k, v in a.items() if not isinstance(v, pd.DataFrame)} == \
        {k: v for k, v in b.items() if not isinstance(v, pd.DataFrame)}
    for k in ("per_image", "skipped"):
        pd.testing.assert_frame_equal(a[k], b[k], check_exact=True)


def test_round_trip_is_exact(tmp_path):
    p = entry_path(tmp_path, KEY, "images", 3)
    write_entry(p, _entry())
    assert p.name == "images-00003.entry" and p.read_bytes()[:8] == b"CIRCSWP1"
    _same(read_entry(p, KEY, "images", 3), _entry())


def test_a_crafted_pickle_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    p = entry_path(tmp_path, KEY, "images", 0)
    p.parent.mkdir(parents=True)
    p.write_bytes(pickle.dumps({"key": KEY, "kind": "images", "index": 0, "x": Evil()}))
    with pytest.warns(CacheWarning, match=str(p)):
        assert read_entry(p, KEY, "images", 0) is None
    assert not marker.exists()
    assert not p.exists()  # discarded: it will be recomputed


def test_every_one_byte_corruption_is_detected(tmp_path):
    data = encode_entry(_entry())
    p = entry_path(tmp_path, KEY, "images", 3)
    rng = random.Random(13)
    positions = sorted(rng.sample(range(len(data)), 250))
    detected = 0
    for pos in positions:
        bad = bytearray(data)
        bad[pos] ^= rng.randrange(1, 256)  # a different byte
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(bytes(bad))
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            got = read_entry(p, KEY, "images", 3)
        detected += got is None and any(str(p) in str(x.message) for x in w)
    assert detected == len(positions) == 250


@pytest.mark.parametrize("damage", ["truncated", "empty", "wrong_key", "wrong_index", "garbage", "directory"])
def test_bad_entries_are_reported_by_path_and_discarded(tmp_path, damage):
    p = entry_path(tmp_path, KEY, "images", 3)
    write_entry(p, _entry(key="b" * 64) if damage == "wrong_key" else _entry(index=4 if damage == "wrong_index" else 3))
    data = p.read_bytes()
    if damage == "truncated":
        p.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        p.write_bytes(b"")
    elif damage == "garbage":
        p.write_bytes(os.urandom(len(data)))
    elif damage == "directory":
        p.unlink()
        p.mkdir()
    with pytest.warns(CacheWarning, match=str(p)):
        assert read_entry(p, KEY, "images", 3) is None
    assert read_entry(entry_path(tmp_path, KEY, "images", 9), KEY, "images", 9) is None  # missing: silent


def test_no_pickle_or_unsafe_load_of_files_in_the_package():
    """Only in-process data may be unpickled; torch.load only with weights_only=True."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2]
    bad = []
    for f in [*root.glob("circuits/**/*.py"), *root.glob("edits/**/*.py"), *root.glob("studies/**/*.py")]:
        text = f.read_text()
        if re.search(r"\bpickle\.loads?\(|\bimport pickle\b|allow_pickle=True", text):
            bad.append(str(f))
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            if "weights_only=True" not in call:
                bad.append(f"{f}: {call}")
    assert bad == []
