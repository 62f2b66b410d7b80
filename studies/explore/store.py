"""The explorer's on-disk cache: content keyed by what produced it, written atomically, never pickled.

A key is the SHA-256 (64 hex digits) of the canonical JSON (sorted keys, no whitespace) of
``{"v", "model": fingerprint, "kind", "settings", "plan"}`` — the model's
:func:`circuits.fingerprint.fingerprint` (weights, buffers, flags, interventions), what was
computed, every setting that changes it, and the edit plan (``EditPlan.to_dict()``, or ``None``).
Dict order never changes a key; any change of model, settings or plan does.

Blobs are files ``<root>/files/<key>.<ext>`` (``json``, ``png``, ``yaml``, ``safetensors``),
served by the web app as ``/files/<key>.<ext>`` (nothing else in the folder is). JSON is read
with :func:`circuits.documents.load_json` (bounded); arrays are stored as JSON lists, tensors as
safetensors — nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: Bump when what a kind of entry holds changes, so old entries are not reused.
STORE_VERSION = 2  # 2: joint-map and weight-diagram figures redrawn (titles, labels, cell size)
#: File suffixes the store writes (and the server may serve).
EXTENSIONS = ("json", "png", "yaml", "safetensors")
#: A blob's file name.
NAME_RE = re.compile(r"^[0-9a-f]{64}\.(json|png|yaml|safetensors)$")


def canonical(obj: Any) -> str:
    """Canonical JSON of ``obj``: sorted keys, no whitespace, tuples as lists (the key's input).

    Raises:
        TypeError: ``obj`` holds something JSON cannot encode (never silently stringified)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)


def make_key(model: str, kind: str, settings: Any = None, plan: Any = None) -> str:
    """SHA-256 hex of the canonical JSON of (version, model fingerprint, kind, settings, plan)."""
    if not isinstance(model, str) or not isinstance(kind, str):
        raise TypeError("model (a fingerprint) and kind must be strings")
    blob = canonical({"v": STORE_VERSION, "model": model, "kind": kind, "settings": settings, "plan": plan})
    return hashlib.sha256(blob.encode()).hexdigest()


class Store:
    """Blobs under ``root/files`` (created on demand).

    Args:
        root: the cache folder (:attr:`studies.explore.config.ExploreConfig.cache`).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self.files = self.root / "files"

    def path(self, key: str, ext: str) -> Path:
        """Where blob ``key.ext`` lives (it may not exist).

        Raises:
            ValueError: not a 64-hex key or an unknown suffix."""
        name = f"{key}.{ext}"
        if not NAME_RE.match(name):
            raise ValueError(f"not a store blob name: {name[:80]!r} (64 hex digits and one of {', '.join(EXTENSIONS)})")
        return self.files / name

    def url(self, key: str, ext: str) -> str:
        """The blob's address in the web app: ``/files/<key>.<ext>``."""
        self.path(key, ext)
        return f"/files/{key}.{ext}"

    def has(self, key: str, ext: str) -> bool:
        """The blob exists (a PNG: and is whole, :func:`png_whole`; a damaged one counts as missing and is
        made again)."""
        p = self.path(key, ext)
        return p.is_file() and (ext != "png" or png_whole(p))

    def write_bytes(self, key: str, ext: str, data: bytes) -> Path:
        """Write atomically (a temporary file in the same folder, then ``os.replace``)."""
        dest = self.path(key, ext)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-", suffix=f".{ext}")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return dest

    def write_with(self, key: str, ext: str, writer) -> Path:
        """``writer(tmp_path)`` writes the file (e.g. ``save_edited``); then it is renamed atomically."""
        dest = self.path(key, ext)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-", suffix=f".{ext}")
        os.close(fd)
        try:
            writer(Path(tmp))
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return dest

    def write_json(self, key: str, obj: Any) -> Path:
        return self.write_bytes(key, "json", json.dumps(obj, allow_nan=False, separators=(",", ":")).encode())

    def read_json(self, key: str, keys: Iterable[str] | None = None) -> Any | None:
        """The JSON blob, or ``None`` when absent or unreadable (a damaged entry is recomputed); with ``keys``,
        also ``None`` unless it is an object holding every one of them (valid JSON of another shape)."""
        from circuits.documents import DocumentError, load_json, read_text

        p = self.path(key, "json")
        if not p.is_file():
            return None
        try:
            got = load_json(read_text(p, "cache entry"), "cache entry")
        except (DocumentError, OSError, ValueError):
            return None
        if keys is not None and not (isinstance(got, dict) and all(k in got for k in keys)):
            return None
        return got

    def write_png(self, key: str, png: bytes) -> Path:
        if not png.startswith(b"\x89PNG\r\n\x1a\n"):
            raise ValueError("not PNG data")
        return self.write_bytes(key, "png", png)

    def resolve_served(self, name: str) -> Path | None:
        """The file behind ``/files/<name>``, or ``None``: only ``<64 hex>.<ext>`` names, only regular
        files (not symlinks) directly in ``root/files``."""
        if not isinstance(name, str) or not NAME_RE.match(name):
            return None
        p = self.files / name
        try:
            st = os.lstat(p)
        except OSError:
            return None
        import stat

        if not stat.S_ISREG(st.st_mode) or (name.endswith(".png") and not png_whole(p)):
            return None
        real = p.resolve()
        if real.parent != self.files.resolve():
            return None
        return real


#: The PNG signature and the IEND chunk every whole PNG ends with (length 0, type, CRC).
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def png_whole(path: Path) -> bool:
    """``path`` starts with the PNG signature and ends with the IEND chunk (a file cut short by a crash or
    a full disk, or not a PNG, is ``False``)."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(PNG_SIGNATURE))
            f.seek(0, os.SEEK_END)
            if f.tell() < len(PNG_SIGNATURE) + len(PNG_END):
                return False
            f.seek(-len(PNG_END), os.SEEK_END)
            return head == PNG_SIGNATURE and f.read() == PNG_END
    except OSError:
        return False
