"""What every study shares: its common settings (:class:`StudyConfig`) and its opening
(:func:`open_study`).

A study is a module ``studies/<name>.py`` with a config dataclass derived from
:class:`StudyConfig` (saved as the report's ``config.yaml``) and a function
``run_<name>(config, out, overwrite=False, progress=True) -> dict`` that opens with
:func:`open_study`, measures in named steps and writes one report folder atomically
(:func:`studies.report.folder.report_folder`). ``docs/architecture.md`` says where each part goes.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import torch

from circuits import load_model
from circuits.model import InceptionV1
from studies.report.folder import check_out_dir, log_step


@dataclass
class StudyConfig:
    """The settings every study has (a study's config adds its own fields after these).

    Attributes:
        model: checkpoint name (``inceptionv1_caffe`` or ``inceptionv1``).
        images: labelled image folder (``<wnid>_*.JPEG`` or ``<wnid>/``); optional unless the
            study says otherwise. Stored resolved (absolute) once the study has opened.
        weights: explicit weights file (default: the user cache).
        batch_size: images per forward pass.
        limit: use only the first ``limit`` images (sorted order); ``None``: all.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        executor: where evaluation tasks run (:func:`studies.run.executors.make_executor` options).
        num_workers: image-loading worker processes (``None``: chosen by the evaluation).
        seed: seeds ``torch`` at the opening and every random choice of the study.
    """

    model: str = "inceptionv1_caffe"
    images: str | None = None
    weights: str | None = None
    batch_size: int = 64
    limit: int | None = None
    device: str = "cpu"
    executor: dict = field(default_factory=lambda: {"name": "local"})
    num_workers: int | None = None
    seed: int = 0

    #: whether the study cannot run without ``images``
    images_required = False

    def check(self) -> None:
        """Check the settings before anything is loaded; a study's config extends this
        (calling ``super().check()``) with its own fields.

        Raises:
            ValueError: a bad setting (the message names the command-line option).
        """
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be ≥ 1, got {self.limit}")

    def check_refs(self, option: str, refs) -> list:
        """Resolve units/families ``refs`` (``"3b:379"``, ``"mixed3b/curves"``, lists) against the
        checkpoint's spec and packaged catalog, before any model is loaded.

        Returns:
            the :class:`~circuits.units.Unit` list.

        Raises:
            ValueError: an unknown layer, unit or family; the message starts with ``option`` and
                lists the valid choices.
        """
        import circuits.catalog  # noqa: F401 - registers the catalogs as the family source
        from circuits.spec import get_spec
        from circuits.units import resolve_units

        try:
            return resolve_units(refs, get_spec(self.model))
        except (KeyError, IndexError, ValueError) as e:
            text = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            raise ValueError(f"{option} {refs if isinstance(refs, str) else ','.join(map(str, refs))}: {text}") from None

    def check_images(self) -> None:
        """Further checks of the ``images`` folder once it is known to exist (default: none)."""


C = TypeVar("C", bound=StudyConfig)


def warn(msg: str) -> None:
    """A warning on stderr, ``circuits: warning: msg``, shown even under ``--quiet`` (small samples,
    results within noise)."""
    import sys

    print(f"circuits: warning: {msg}", file=sys.stderr, flush=True)


@dataclass
class Opening(Generic[C]):
    """What :func:`open_study` hands to the study: the checked config, the loaded model and
    the step logger."""

    config: C
    model: InceptionV1
    t0: float  #: ``time.perf_counter()`` at the opening
    quiet: bool

    def log(self, msg: str) -> None:
        """One progress line with the elapsed time (nothing when quiet)."""
        log_step(msg, self.t0, self.quiet)

    def elapsed(self) -> float:
        """Seconds since the opening, rounded to 0.1 s (the reports' ``wall_time_s``)."""
        return round(time.perf_counter() - self.t0, 1)


def open_study(config: C, out: str | Path, overwrite: bool = False, progress: bool = True) -> Opening[C]:
    """The opening every study shares, in an order that reports any user error before compute:

    1. ``out`` must be absent or empty unless ``overwrite`` (:func:`~studies.report.folder.check_out_dir`);
    2. the settings (:meth:`StudyConfig.check`);
    3. ``images``, when given (required when the config's ``images_required``), must be a folder; then
       :meth:`StudyConfig.check_images`; the path is stored resolved;
    4. ``torch.manual_seed(config.seed)`` and the checkpoint (verified weights) on ``config.device``.

    Raises:
        ReportExistsError: ``out`` is not empty and not ``overwrite``.
        ValueError: a bad setting. FileNotFoundError: ``images`` is not a folder.
        WeightsError: missing or corrupt weights.
    """
    t0 = time.perf_counter()
    check_out_dir(out, overwrite)
    config.check()
    if config.images or config.images_required:  # "" and None: no images
        if not config.images or not Path(config.images).is_dir():
            shown = repr(config.images) if config.images_required else config.images
            raise FileNotFoundError(f"--images {shown} is not a folder")
        config.check_images()
        config = dataclasses.replace(config, images=str(Path(config.images).resolve()))
    torch.manual_seed(config.seed)
    model = load_model(config.model, weights=config.weights, device=config.device)
    return Opening(config, model, t0, not progress)
