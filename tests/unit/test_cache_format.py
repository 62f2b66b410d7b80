"""The sweep cache's exact formats (studies.run.cache): key JSON, descriptions, digests, entry
header and the error of every rejected entry, each against bytes written out by hand
(mutation testing, issue 14; see docs/mutation.md)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import studies.run.cache as C
from edits import Ablate, EditPlan
from studies.run.cache import (
    BadEntry,
    CacheWarning,
    cache_key,
    decode_entry,
    default_cache_dir,
    encode_entry,
    image_set_description,
    plan_json,
    read_entry,
    sha,
    stimulus_cache_key,
    stimulus_set_description,
    tensor_digest,
    write_entry,
)

KEY = "k" * 64
#: under mutmut (``make mutation``) every mutated function is called through a trampoline (two more frames)
CALLER = "trampoline.py" if "MUTANT_UNDER_TEST" in os.environ else __file__


def _h(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def _sorted_everywhere(text: str) -> bool:
    """Every JSON object in ``text`` has its keys in sorted order."""
    ok = []
    json.loads(text, object_pairs_hook=lambda pairs: ok.append([k for k, _ in pairs] == sorted(k for k, _ in pairs)))
    return all(ok)


# ----------------------------------------------------------------------------- keys
def test_sha_is_sorted_json_with_str_fallback():
    assert sha({"b": 1, "a": Path("/x")}) == _h('{"a": "/x", "b": 1}')
    assert sha([1, None]) == _h("[1, null]")


def test_image_key_json_is_exactly_this():
    assert C.CACHE_VERSION == 3
    got = cache_key(None, "ck", "fp", {"n": 1}, None, 8)
    assert got == _h('{"batch_size": 8, "checkpoint": "ck", "images": {"n": 1}, "limit": null, "model": "fp", '
                     '"plan": "null", "reference": null, "shard_size": null, "v": 3}')
    got = cache_key(None, "ck", "fp", {"n": 1}, 5, 8, reference_digest="R", shard_size=2)  # no plan: no reference
    assert got == _h('{"batch_size": 8, "checkpoint": "ck", "images": {"n": 1}, "limit": 5, "model": "fp", '
                     '"plan": "null", "reference": null, "shard_size": 2, "v": 3}')


def test_stimulus_key_json_is_exactly_this():
    got = stimulus_cache_key(None, "ck", "fp", {"n": 2}, ("mixed3b:1",), True, 16, reference_digest="R")
    assert got == _h('{"checkpoint": "ck", "kind": "stimuli", "model": "fp", "plan": "null", "pre_relu": true, '
                     '"reference": null, "stimuli": {"n": 2}, "stimulus_batch": 16, "units": ["mixed3b:1"], "v": 3}')


def test_stimulus_key_reads_the_reference_only_for_plans_that_need_it():
    mean = EditPlan([Ablate("3b:1", mode="mean")])
    zero = EditPlan([Ablate("3b:1", mode="zero")])
    assert mean.needs_reference() and not zero.needs_reference()

    def key(plan, ref):
        return stimulus_cache_key(plan, "ck", "fp", {"n": 2}, ["mixed3b:1"], True, 16, reference_digest=ref)

    assert key(mean, "R1") != key(mean, "R2")
    assert key(zero, "R1") == key(zero, "R2") == key(zero, None)


def test_plan_json_is_sorted_and_null_for_no_plan():
    plan = EditPlan([Ablate("3b:1", mode="mean"), Ablate("3a:2")])
    text = plan_json(plan)
    assert json.loads(text) == plan.to_dict() and _sorted_everywhere(text)
    assert plan_json(None) == "null"


def test_descriptions_and_digests(tmp_path, monkeypatch):
    class Stim:
        size, center = 32, [16, 16]
        _params = {"b": [1.5], "a": "x"}
        meta = pd.DataFrame({"m": [1, 2]})

        def __len__(self):
            return 2

    assert stimulus_set_description(Stim()) == {"n": 2, "size": 32, "center": [16, 16],
                                                "params_sha256": _h('{"a": "x", "b": [1.5]}'),
                                                "meta_sha256": _h('{"m": [1, 2]}')}
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.png").write_bytes(b"abc")
    link = tmp_path / "link"
    link.symlink_to(real)

    class Dataset:
        root = str(link)
        samples = [(str(link / "a.png"), 0, "n0"), (str(link / "gone.png"), 1, "n1")]

    mtime = os.stat(real / "a.png").st_mtime_ns
    assert image_set_description(Dataset()) == {"root": str(real), "n": 2, "files_sha256": _h(
        f'[["a.png", 3, {mtime}], ["gone.png", null, null]]')}
    t = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    expect = _h(b"(2, 2)|torch.float32" + np.array([[1, 3], [2, 4]], np.float32).tobytes())
    assert tensor_digest(t.T) == expect  # a transposed view is digested in its logical (C) order
    monkeypatch.setenv("CIRCUITS_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c" / "sweeps"


# ----------------------------------------------------------------------------- entry files
def _parts(data: bytes) -> tuple[dict, bytes, str]:
    rest = data[40:]
    size = int.from_bytes(rest[:8], "little")
    return json.loads(rest[8:8 + size]), rest[8 + size:], rest[8:8 + size].decode()


def _seal(header: dict, npz: bytes) -> bytes:
    head = json.dumps(header).encode()
    rest = len(head).to_bytes(8, "little") + head + npz
    return b"CIRCSWP1" + hashlib.sha256(rest).digest() + rest


def test_entry_header_is_exactly_this():
    t = pd.DataFrame({"a": np.array([1, 2], np.int64), "s": ["x", "yz"], "l": [[1, 2], [3, 4]],
                      "f": np.array([0.5, 1.5], np.float32)})
    data = encode_entry({"key": KEY, "kind": "images", "index": 3, "t": t})  # variant, plan, seconds missing
    assert data[:8] == b"CIRCSWP1" and data[8:40] == hashlib.sha256(data[40:]).digest()
    header, _, text = _parts(data)
    assert header == {"key": KEY, "kind": "images", "index": 3, "variant": None, "plan": None, "seconds": None,
                      "frames": {"t": [["a", "plain", "int64"], ["s", "str", "<U2"], ["l", "list", "int64"],
                                       ["f", "plain", "float32"]]}}
    assert _sorted_everywhere(text)
    got = decode_entry(data, KEY, "images", 3)
    assert list(got) == ["key", "kind", "index", "t"]
    assert got["t"]["f"].dtype == np.float32 and got["t"]["f"].tolist() == [0.5, 1.5]
    assert got["t"]["l"].tolist() == [[1, 2], [3, 4]]
    with pytest.raises(TypeError) as e:
        encode_entry({"key": KEY, "kind": "images", "index": 3, "extra": 1})
    assert e.value.args[0] == ("cache entries hold ['index', 'key', 'kind', 'plan', 'seconds', 'variant'] and "
                               "DataFrames, not 'extra'")


@pytest.mark.parametrize("column, message", [
    ([{"a": 1}], "cache entry column t.c holds values the cache cannot store: {'a': 1}"),
    (pd.array([True, None], dtype="boolean"), "cache entry column t.c has no fixed dtype"),
])
def test_unstorable_columns_are_named(column, message):
    with pytest.raises(TypeError) as e:
        encode_entry({"key": KEY, "kind": "images", "index": 0, "t": pd.DataFrame({"c": column})})
    assert e.value.args[0] == message


def _good() -> bytes:
    return encode_entry({"key": KEY, "kind": "images", "index": 0, "t": pd.DataFrame({"a": np.array([1], np.int64)})})


def _bad_entries():
    header, npz, _ = _parts(_good())
    wrong_dtype = dict(header, frames={"t": [["a", "plain", "float64"]]})
    buf = io.BytesIO()
    np.savez(buf, **{"t.0": np.array([1], np.int64)})
    return [
        (b"NOTMAGIC" + _good()[8:], "not a circuits sweep cache entry (wrong magic bytes)"),
        (_good()[:-1], "checksum mismatch (corrupted or truncated)"),
        (_seal({"kind": "images"}, npz), "unreadable header ('key')"),
        (_seal(dict(header, index=1), npz), f"holds ('{KEY}', 'images', 1), not ('{KEY}', 'images', 0)"),
        (_seal(wrong_dtype, buf.getvalue()), "column a has dtype int64, the header says float64"),
        # numpy's own words follow (not pinned: they change between numpy versions)
        (_seal(header, b"not a zip"), "unreadable tables (ValueError: "),
    ]


@pytest.mark.parametrize("case", range(6))
def test_every_rejection_says_why(case):
    data, message = _bad_entries()[case]
    with pytest.raises(BadEntry) as e:
        decode_entry(data, KEY, "images", 0)
    assert e.value.args[0] == message if case < 5 else e.value.args[0].startswith(message)


def test_an_object_array_in_a_sealed_entry_is_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    header, _, _ = _parts(_good())
    buf = io.BytesIO()
    np.savez(buf, **{"t.0": np.array([Evil()], dtype=object)})
    data = _seal(dict(header, frames={"t": [["a", "plain", "object"]]}), buf.getvalue())
    with pytest.raises(BadEntry, match="unreadable tables"):
        decode_entry(data, KEY, "images", 0)
    assert not marker.exists()


def test_read_entry_warns_at_the_callers_line_and_survives_an_undeletable_file(tmp_path, monkeypatch):
    p = tmp_path / "e.entry"
    p.write_bytes(b"garbage")
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        assert read_entry(p, KEY, "images", 0) is None
    assert [(w.category, w.filename.endswith(CALLER)) for w in got] == [(CacheWarning, True)]
    assert not p.exists()
    d = tmp_path / "dir.entry"
    d.mkdir()  # unreadable as a file
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        assert read_entry(d, KEY, "images", 0) is None
    assert [(w.category, w.filename.endswith(CALLER)) for w in got] == [(CacheWarning, True)]
    p.write_bytes(b"garbage")

    def refuse(self, missing_ok=False):
        raise PermissionError(str(self))

    monkeypatch.setattr(Path, "unlink", refuse)
    with pytest.warns(CacheWarning, match="discarding"):
        assert read_entry(p, KEY, "images", 0) is None  # could not delete it: still a miss, no error


def test_write_entry_makes_folders_and_reraises_the_real_error(tmp_path, monkeypatch):
    entry = {"key": KEY, "kind": "images", "index": 0}
    for name in ("a.entry", "b.entry"):  # nested folders, made once and then reused
        write_entry(tmp_path / "x" / "y" / name, entry)
    assert sorted(p.name for p in (tmp_path / "x" / "y").iterdir()) == ["a.entry", "b.entry"]

    def full(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(C, "open", full, raising=False)  # fails before the temporary file exists
    with pytest.raises(OSError, match="disk full"):
        write_entry(tmp_path / "x" / "y" / "c.entry", entry)
    assert sorted(p.name for p in (tmp_path / "x" / "y").iterdir()) == ["a.entry", "b.entry"]
