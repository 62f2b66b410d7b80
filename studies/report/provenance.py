"""Provenance of a run, recorded in every report's ``config.yaml`` and ``metrics.json``.

:func:`run_provenance` gathers what is needed to know what produced the numbers and to re-run it
(``circuits replay DIR/config.yaml``): the weights file and its SHA-256, the package version and
git commit (when running from a git checkout), Python/torch/torchvision versions, the device,
the command line and the seed. :func:`write_config` writes a study's ``config.yaml`` with it.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

#: version of the ``config.yaml`` layout written by :func:`write_config`
CONFIG_FORMAT = 1


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime: float) -> str:
    from circuits.weights import sha256_file

    return sha256_file(Path(path))


def weights_sha256(source: str | None) -> str | None:
    """SHA-256 of the weights file ``source`` (``None`` when not a file; cached per size/mtime)."""
    if not source or not Path(source).is_file():
        return None
    st = os.stat(source)
    return _sha256(str(Path(source).resolve()), st.st_size, st.st_mtime)


@functools.lru_cache(maxsize=1)
def code_version() -> dict:
    """``{"package": version or None, "git_commit": sha or None, "git_dirty": bool or None}``."""
    try:
        from importlib.metadata import version

        pkg = version("circuits")
    except Exception:  # not installed (source tree on PYTHONPATH)
        pkg = None
    root = Path(__file__).resolve().parents[2]
    commit = dirty = None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip() or None
        st = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                            capture_output=True, text=True, timeout=5, check=True).stdout
        dirty = bool(st.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return {"package": pkg, "git_commit": commit, "git_dirty": dirty}


def run_provenance(model: Any = None, *, device: str | None = None, seed: int | None = None,
                   argv: list[str] | None = None) -> dict:
    """What produced a report: weights (file, SHA-256, recorded state digest), code version,
    library versions, device, command line and seed. ``model``: an :class:`~circuits.model.InceptionV1`
    (its :attr:`provenance`), or ``None``."""
    import torch
    import torchvision

    prov = getattr(model, "provenance", None)
    source = getattr(prov, "weights_source", None)
    return {
        "weights": {"source": source, "sha256": weights_sha256(source),
                    "state_digest": getattr(prov, "weights_digest", None),
                    "checkpoint": getattr(getattr(model, "spec", None), "name", None)},
        "code": code_version(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "device": device,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "command_line": list(sys.argv if argv is None else argv),
        "seed": seed,
        "platform": platform.platform(),
    }


def write_config(path: str | Path, study: str, config: Any, model: Any = None, extra: dict | None = None) -> dict:
    """Write ``config.yaml`` for ``study`` (the name ``circuits replay`` dispatches on): the
    config dataclass's fields at the top level, then ``study``, ``config_format``, ``extra`` (not
    read back) and ``provenance``. Returns the provenance dict (for ``metrics.json``)."""
    from studies.report.folder import write_yaml

    fields = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    prov = run_provenance(model, device=fields.get("device"), seed=fields.get("seed"))
    doc = {"study": study, "config_format": CONFIG_FORMAT, **fields}
    if extra:
        doc["extra"] = extra
    doc["provenance"] = prov
    write_yaml(Path(path), doc)
    return prov
