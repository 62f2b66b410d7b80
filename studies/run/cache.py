"""The sweep's on-disk cache (:mod:`studies.run.sweep`): cache keys, entry paths and atomic
entry files. One entry is the result of one plan on one image shard or stimulus batch,
``<cache>/<key>/<kind>-<index>.entry``; what the keys hash is in :mod:`studies.run.sweep`'s
docstring (the model enters through :func:`circuits.fingerprint.fingerprint`).

The cache is data, never code: an entry is a JSON header and a NumPy ``.npz`` archive of plain
arrays, read with ``allow_pickle=False`` (:func:`encode_entry`), behind a SHA-256 of all its
bytes. Entries are written by the sweep's driver only, renamed into place when complete, and
used only when the magic bytes, the checksum, the header and the key, kind and index all
match; any other entry is reported (a :class:`CacheWarning` naming the file), deleted and
recomputed (:func:`read_entry`). Nothing read from the cache is ever executed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from edits import EditPlan

#: Bumped when an entry's content changes meaning (old entries are then never read).
CACHE_VERSION = 3


def default_cache_dir() -> Path:
    """``$CIRCUITS_CACHE/sweeps`` (see :func:`circuits.weights.cache_dir`)."""
    from circuits.weights import cache_dir

    return cache_dir() / "sweeps"


def sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def tensor_digest(t: torch.Tensor) -> str:
    """SHA-256 of a tensor's shape, dtype and bytes."""
    t = t.detach().cpu().contiguous()
    h = hashlib.sha256(f"{tuple(t.shape)}|{t.dtype}".encode())
    h.update(t.numpy().tobytes())
    return h.hexdigest()


def image_set_description(dataset) -> dict:
    """Resolved folder and ``[relative path, size, mtime_ns]`` of every sample of an
    :class:`~studies.measure.images.ImageFolderDataset` (after ``head(limit)``)."""
    root = Path(dataset.root).resolve()
    files = []
    for p, _, _ in dataset.samples:
        rel = os.path.relpath(p, dataset.root)  # relative to the folder as given: the same through a symlink
        try:
            st = os.stat(p)
            files.append([rel, st.st_size, st.st_mtime_ns])
        except OSError:
            files.append([rel, None, None])
    return {"root": str(root), "n": len(files), "files_sha256": sha(files)}


def stimulus_set_description(stimuli) -> dict:
    """Size, centre and a digest of every parameter of a :class:`~studies.measure.stimuli.Stimuli` table."""
    return {"n": len(stimuli), "size": stimuli.size, "center": stimuli.center,
            "params_sha256": sha(stimuli._params), "meta_sha256": sha(stimuli.meta.to_dict("list"))}


def plan_json(plan: EditPlan | None) -> str:
    return "null" if plan is None else json.dumps(plan.to_dict(), sort_keys=True)


def cache_key(plan: EditPlan | None, checkpoint: str, model_fingerprint: str, images: dict, limit: int | None,
              batch_size: int, reference_digest: str | None = None, shard_size: int | None = None) -> str:
    """The image cache key of one plan (see :mod:`studies.run.sweep`); ``model_fingerprint`` is
    :func:`circuits.fingerprint.fingerprint` of the unedited model."""
    needs_ref = plan is not None and bool(plan.needs_reference())
    return sha({"v": CACHE_VERSION, "plan": plan_json(plan), "checkpoint": checkpoint, "model": model_fingerprint,
                 "images": images, "limit": limit, "batch_size": batch_size, "shard_size": shard_size,
                 "reference": reference_digest if needs_ref else None})


def stimulus_cache_key(plan: EditPlan | None, checkpoint: str, model_fingerprint: str, stimuli: dict,
                       units: Sequence[str], pre_relu: bool, stimulus_batch: int,
                       reference_digest: str | None = None) -> str:
    """The stimulus cache key of one plan (see the module docstring)."""
    needs_ref = plan is not None and bool(plan.needs_reference())
    return sha({"v": CACHE_VERSION, "kind": "stimuli", "plan": plan_json(plan), "checkpoint": checkpoint,
                 "model": model_fingerprint, "stimuli": stimuli, "units": list(units), "pre_relu": pre_relu,
                 "stimulus_batch": stimulus_batch, "reference": reference_digest if needs_ref else None})


def entry_path(cache: Path, key: str, kind: str, index: int) -> Path:
    """Where the result of one plan (``key``) on shard/batch ``index`` of ``kind`` is stored."""
    return Path(cache) / key / f"{kind}-{index:05d}{ENTRY_SUFFIX}"


# ---------------------------------------------------------------------------- entry files
#: File suffix of an entry; its first bytes are :data:`ENTRY_MAGIC`.
ENTRY_SUFFIX = ".entry"
ENTRY_MAGIC = b"CIRCSWP1"
#: Scalar fields of an entry (the rest are DataFrames).
_FIELDS = {"key": str, "kind": str, "index": int, "variant": str, "plan": str, "seconds": float}


class BadEntry(ValueError):
    """A cache entry that cannot be used (unreadable, corrupted, another key); the message says why."""


def _frame_arrays(name: str, df: pd.DataFrame) -> tuple[list, dict[str, np.ndarray]]:
    """``(schema, arrays)`` of a DataFrame: one array per column; strings as unicode arrays,
    equal-length integer lists (``top5``) as 2-D arrays. No object arrays (nothing to unpickle)."""
    schema, arrays = [], {}
    for j, col in enumerate(df.columns):
        v = df[col]
        arr_name = f"{name}.{j}"
        if pd.api.types.is_bool_dtype(v.dtype) or pd.api.types.is_numeric_dtype(v.dtype):
            arr, enc = v.to_numpy(), "plain"
        elif all(isinstance(x, str) for x in v):
            arr, enc = np.array(v.tolist(), dtype=str).reshape(len(v)), "str"
        elif all(isinstance(x, (list, tuple)) for x in v):
            arr, enc = np.array(v.tolist(), dtype=np.int64).reshape(len(v), -1), "list"
        else:
            raise TypeError(f"cache entry column {name}.{col} holds values the cache cannot store: {v.iloc[0]!r}")
        if arr.dtype == object:
            raise TypeError(f"cache entry column {name}.{col} has no fixed dtype")
        schema.append([str(col), enc, str(arr.dtype)])
        arrays[arr_name] = arr
    return schema, arrays


def _frame(name: str, schema: list, arrays) -> pd.DataFrame:
    cols = {}
    for j, (col, enc, dtype) in enumerate(schema):
        arr = arrays[f"{name}.{j}"]
        if str(arr.dtype) != dtype:
            raise BadEntry(f"column {col} has dtype {arr.dtype}, the header says {dtype}")
        cols[col] = arr.tolist() if enc in ("str", "list") else arr
    return pd.DataFrame(cols, columns=[c for c, _, _ in schema])


def encode_entry(entry: dict) -> bytes:
    """The bytes of an entry file: ``ENTRY_MAGIC``, the SHA-256 of the rest (32 bytes), then
    the rest: an 8-byte little-endian header length, the JSON header (the scalar fields and
    every table's column schema) and an ``.npz`` archive of the columns (no object arrays)."""
    header: dict = {k: (t(entry[k]) if k in entry else None) for k, t in _FIELDS.items()}
    header["frames"] = {}
    arrays: dict[str, np.ndarray] = {}
    for name, v in entry.items():
        if isinstance(v, pd.DataFrame):
            header["frames"][name], arr = _frame_arrays(name, v)
            arrays.update(arr)
        elif name not in _FIELDS:
            raise TypeError(f"cache entries hold {sorted(_FIELDS)} and DataFrames, not {name!r}")
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    head = json.dumps(header, sort_keys=True).encode()
    rest = len(head).to_bytes(8, "little") + head + buf.getvalue()
    return ENTRY_MAGIC + hashlib.sha256(rest).digest() + rest


def decode_entry(data: bytes, key: str, kind: str, index: int) -> dict:
    """The entry in ``data`` (bytes of an entry file), verified: magic, checksum, header, key.

    Raises:
        BadEntry: anything wrong, with the reason.
    """
    n = len(ENTRY_MAGIC)
    if data[:n] != ENTRY_MAGIC:
        raise BadEntry("not a circuits sweep cache entry (wrong magic bytes)")
    digest, rest = data[n:n + 32], data[n + 32:]
    if len(digest) < 32 or hashlib.sha256(rest).digest() != digest:
        raise BadEntry("checksum mismatch (corrupted or truncated)")
    size = int.from_bytes(rest[:8], "little")
    try:
        header = json.loads(rest[8:8 + size])
        found = (header["key"], header["kind"], header["index"])
    except (ValueError, KeyError, TypeError) as e:
        raise BadEntry(f"unreadable header ({e})") from None
    if found != (key, kind, index):
        raise BadEntry(f"holds {found}, not {(key, kind, index)}")
    try:
        with np.load(io.BytesIO(rest[8 + size:]), allow_pickle=False) as z:
            frames = {name: _frame(name, schema, z) for name, schema in header["frames"].items()}
    except BadEntry:
        raise
    except Exception as e:  # a malformed archive: whatever numpy/zipfile raise
        raise BadEntry(f"unreadable tables ({type(e).__name__}: {e})") from None
    return {**{k: header[k] for k in _FIELDS if header.get(k) is not None}, **frames}


def write_entry(path: Path, entry: dict) -> None:
    """Write ``entry`` to ``path`` atomically (a temporary file renamed when complete)."""
    data = encode_entry(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_entry(path: Path, key: str, kind: str, index: int) -> dict | None:
    """The verified entry at ``path``, or ``None`` when there is none. A bad entry (unreadable,
    checksum mismatch, truncated, another key) is reported — a :class:`CacheWarning` naming the
    file and the reason —, deleted and treated as missing, so it is recomputed."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        warnings.warn(f"sweep cache: cannot read {path} ({e}); recomputing it", CacheWarning, stacklevel=2)
        return None
    try:
        return decode_entry(data, key, kind, index)
    except BadEntry as e:
        warnings.warn(f"sweep cache: discarding {path}: {e}; recomputing it", CacheWarning, stacklevel=2)
        with contextlib.suppress(OSError):
            Path(path).unlink()
        return None


class CacheWarning(UserWarning):
    """A sweep cache entry was discarded (the message names the file and why)."""
