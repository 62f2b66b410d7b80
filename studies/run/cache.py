"""The sweep's on-disk cache (:mod:`studies.run.sweep`): cache keys, entry paths and atomic
entry files. One entry is the result of one plan on one image shard or stimulus batch,
``<cache>/<key>/<kind>-<index>.pkl``; what the keys hash is in :mod:`studies.run.sweep`'s
docstring. Entries are written by the sweep's driver only, renamed into place when complete,
and read back only when their key, kind and index match.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import torch

from edits import EditPlan

#: Bumped when an entry's content changes meaning (old entries are then never read).
CACHE_VERSION = 2


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
        try:
            st = os.stat(p)
            files.append([os.path.relpath(p, root), st.st_size, st.st_mtime_ns])
        except OSError:
            files.append([os.path.relpath(p, root), None, None])
    return {"root": str(root), "n": len(files), "files_sha256": sha(files)}


def stimulus_set_description(stimuli) -> dict:
    """Size, centre and a digest of every parameter of a :class:`~studies.measure.stimuli.Stimuli` table."""
    return {"n": len(stimuli), "size": stimuli.size, "center": stimuli.center,
            "params_sha256": sha(stimuli._params), "meta_sha256": sha(stimuli.meta.to_dict("list"))}


def plan_json(plan: EditPlan | None) -> str:
    return "null" if plan is None else json.dumps(plan.to_dict(), sort_keys=True)


def cache_key(plan: EditPlan | None, checkpoint: str, weights_digest: str, images: dict, limit: int | None,
              batch_size: int, reference_digest: str | None = None, shard_size: int | None = None) -> str:
    """The image cache key of one plan (see the module docstring)."""
    needs_ref = plan is not None and bool(plan.needs_reference())
    return sha({"v": CACHE_VERSION, "plan": plan_json(plan), "checkpoint": checkpoint, "weights": weights_digest,
                 "images": images, "limit": limit, "batch_size": batch_size, "shard_size": shard_size,
                 "reference": reference_digest if needs_ref else None})


def stimulus_cache_key(plan: EditPlan | None, checkpoint: str, weights_digest: str, stimuli: dict,
                       units: Sequence[str], pre_relu: bool, stimulus_batch: int,
                       reference_digest: str | None = None) -> str:
    """The stimulus cache key of one plan (see the module docstring)."""
    needs_ref = plan is not None and bool(plan.needs_reference())
    return sha({"v": CACHE_VERSION, "kind": "stimuli", "plan": plan_json(plan), "checkpoint": checkpoint,
                 "weights": weights_digest, "stimuli": stimuli, "units": list(units), "pre_relu": pre_relu,
                 "stimulus_batch": stimulus_batch, "reference": reference_digest if needs_ref else None})


def entry_path(cache: Path, key: str, kind: str, index: int) -> Path:
    """Where the result of one plan (``key``) on shard/batch ``index`` of ``kind`` is stored."""
    return Path(cache) / key / f"{kind}-{index:05d}.pkl"


def write_entry(path: Path, entry: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            pickle.dump(entry, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_entry(path: Path, key: str, kind: str, index: int) -> dict | None:
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
        return None
    if not isinstance(entry, dict) or (entry.get("key"), entry.get("kind"), entry.get("index")) != (key, kind, index):
        return None
    return entry
