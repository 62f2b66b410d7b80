"""Settings of the explorer: :class:`ExploreConfig` (what ``circuits explore`` and
:func:`studies.explore.server.create_app` take)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from studies.measure import stimuli as S

#: Largest request body (bytes) the server reads; larger bodies get 413 before parsing.
MAX_BODY_BYTES = 1 << 20


def default_cache() -> Path:
    """``$CIRCUITS_CACHE/explore`` (else ``~/.cache/circuits/explore``; :func:`circuits.weights.cache_dir`)."""
    from circuits.weights import cache_dir

    return cache_dir() / "explore"


def check_cache(cache: Path) -> Path:
    """Create ``cache`` (and its parents) and write and remove a probe file in it: the CLI calls this before
    loading the model, so an unusable ``--cache`` costs nothing.

    Raises:
        ValueError: the folder cannot be created or written (the message names ``--cache`` and the reason)."""
    import os
    import tempfile

    cache = Path(cache).expanduser()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".circuits-probe-", dir=cache)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"--cache {cache}: cannot create or write the cache folder ({e.strerror or e}); "
                         "give a writable folder with --cache DIR") from None
    return cache


@dataclass
class ExploreConfig:
    """What the explorer serves and how it measures.

    Attributes:
        checkpoint: model name (``inceptionv1_caffe`` or ``inceptionv1``).
        weights: weights file (default: the verified cache; an edited-model file works too).
        images: image folder for dataset examples, σ units and accuracy (``None``: those are off).
        cache: cache folder (default :func:`default_cache`).
        host: interface to bind (``127.0.0.1``: this machine only).
        port: TCP port (0 = a free port).
        seed: seed of every random choice (feature visualization, range-example sampling).
        orientation_step: degrees between the orientations of the tuning stimuli (Curve Detectors'
            radial tuning curve; 5° = 72 orientations).
        radii: curve radii in px (default :data:`studies.measure.stimuli.DEFAULT_RADII`).
        stroke_width: curve stroke in px.
        vis_steps: optimisation steps of a feature visualization (512 = Lucid's default).
        top_k: dataset examples per unit (top and per activation range).
        dataset_limit: dataset examples from the first N images only (``None``: all).
        reference_images: images of the σ reference statistics (pre-ReLU, all positions).
        max_body: request body limit in bytes.
        device: torch device.
    """

    checkpoint: str = "inceptionv1_caffe"
    weights: str | None = None
    images: str | None = None
    cache: Path = field(default_factory=default_cache)
    host: str = "127.0.0.1"
    port: int = 8000
    seed: int = 0
    orientation_step: float = 5.0
    radii: Sequence[float] = S.DEFAULT_RADII
    stroke_width: float = 2.0
    vis_steps: int = 256
    top_k: int = 8
    dataset_limit: int | None = None
    reference_images: int = 100
    max_body: int = MAX_BODY_BYTES
    device: str = "cpu"

    def check(self) -> ExploreConfig:
        """Validate every setting (before any compute); returns ``self``.

        Raises:
            ValueError / KeyError: a bad value, naming the setting and its valid range.
            FileNotFoundError / NotADirectoryError: ``images`` is not a folder of images.
        """
        from circuits.spec import get_spec

        self.checkpoint = get_spec(self.checkpoint).name
        self.cache = Path(self.cache).expanduser()
        if self.cache.exists() and not self.cache.is_dir():
            raise ValueError(f"cache {self.cache} exists and is not a folder")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError(f"port must be an integer in 0..65535 (0 = a free port); got {self.port!r}")
        if not isinstance(self.host, str) or not self.host.strip():
            raise ValueError(f"host must be an interface name or address such as 127.0.0.1; got {self.host!r}")
        _number("orientation_step", self.orientation_step, 0.1, 180.0, " degrees")
        _number("stroke_width", self.stroke_width, 0.25, 50.0, " px")
        if not self.radii:
            raise ValueError("radii must list at least one radius (px)")
        for r in self.radii:
            _number("radii", r, 0.5, 1000.0, " px")
        self.radii = tuple(float(r) for r in self.radii)
        for name, lo, hi in (("vis_steps", 1, 100_000), ("top_k", 1, 64), ("reference_images", 1, 100_000),
                             ("max_body", 1024, 1 << 30), ("seed", 0, 2**63 - 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"{name} must be an integer in {lo}..{hi}; got {v!r}")
        if self.dataset_limit is not None and (not isinstance(self.dataset_limit, int) or self.dataset_limit < 1):
            raise ValueError(f"dataset_limit must be an integer ≥ 1 or None; got {self.dataset_limit!r}")
        S.curves(S.orientation_grid(self.orientation_step)[:1], self.radii, stroke_width=self.stroke_width)
        if self.images is not None:
            from studies.measure.images import list_images

            self.images = str(Path(self.images).expanduser().resolve())
            list_images(self.images)
        return self

    def tuning_settings(self) -> dict:
        """The settings that change a tuning measurement (part of its cache keys)."""
        return dict(orientation_step=float(self.orientation_step), radii=[float(r) for r in self.radii],
                    stroke_width=float(self.stroke_width), pre_relu=True, stimuli="curves")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["cache"] = str(self.cache)
        d["radii"] = list(self.radii)
        return d


def _number(name: str, v, lo: float, hi: float, unit: str) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
        raise ValueError(f"{name} must be a number between {lo:g} and {hi:g}{unit}; got {v!r}")
