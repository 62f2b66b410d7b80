"""Shared fixtures and the test layout. The real data is found through one setting:
``CIRCUITS_DATA`` (default: ``../shared/data`` beside the project root). Tests that need it
fail — never skip — when it is missing.

Layout: ``tests/unit/`` holds the tests that need no real data (marker ``unit``, run alone with
``pytest -m unit`` or ``make test-unit``); ``tests/real/`` the tests on the real BVLC weights
and sample images (marker ``real_data``, ``make test-real``). The markers are applied here by
folder; a test outside these two folders, or a unit test asking for a real-data fixture, is a
collection error. Test file names must be unique across both folders (pytest's default import
mode), hence the ``_real`` suffix where a topic has tests in both."""

from __future__ import annotations

import io
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CIRCUITS_DATA", ROOT.parent / "shared" / "data")).resolve()
os.environ["CIRCUITS_DATA"] = str(DATA)

torch.set_num_threads(min(2, os.cpu_count() or 1))

#: test folder → marker applied to every test in it (markers declared in pyproject.toml)
FOLDER_MARKERS = {"unit": "unit", "real": "real_data"}
#: fixtures that read the real data: a unit test must not ask for them
REAL_FIXTURES = frozenset({"data_dir", "images_dir", "caffe_model", "sample_batch"})


def pytest_collection_modifyitems(config, items) -> None:
    """Mark every test by its folder (``tests/unit`` → ``unit``, ``tests/real`` → ``real_data``)."""
    here = Path(__file__).resolve().parent
    for item in items:
        try:
            folder = Path(item.path).resolve().relative_to(here).parts[0]
        except ValueError:
            continue  # a test outside tests/ (pytest run on another path)
        marker = FOLDER_MARKERS.get(folder)
        if marker is None:
            raise pytest.UsageError(f"{item.nodeid}: tests live in tests/unit/ (no real data) or tests/real/ "
                                    f"(real weights/images), not in tests/{folder}")
        if marker == "unit" and REAL_FIXTURES & set(item.fixturenames):
            raise pytest.UsageError(f"{item.nodeid}: a unit test uses real-data fixtures "
                                    f"{sorted(REAL_FIXTURES & set(item.fixturenames))}; move it to tests/real/")
        item.add_marker(getattr(pytest.mark, marker))


# ---------------------------------------------------------------- helpers for test image folders
# (import them in a test module: ``from conftest import jpeg_bytes, time_limit``)
def jpeg_bytes(w: int = 40, h: int = 30, seed: int = 0) -> bytes:
    """A ``w`` × ``h`` JPEG of uniform random pixels (numpy generator seeded by ``seed``)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging the test run) when the body takes longer than ``seconds`` (SIGALRM)."""
    def fail(signum, frame):
        raise TimeoutError(f"hang: took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def no_model(monkeypatch):
    """Loading a model fails the test: every check of the command under test must come before it
    (``circuits.load_model`` and the studies' ``studies.base.load_model``)."""
    def refuse(*a, **k):
        raise AssertionError("a model was loaded before the bad value was reported (validation came too late)")

    monkeypatch.setattr("circuits.load_model", refuse)
    monkeypatch.setattr("studies.base.load_model", refuse)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Every test session uses its own weights cache, so tests never depend on ~/.cache."""
    old = os.environ.get("CIRCUITS_CACHE")
    os.environ["CIRCUITS_CACHE"] = str(tmp_path_factory.mktemp("circuits-cache"))
    yield
    if old is None:
        os.environ.pop("CIRCUITS_CACHE", None)
    else:
        os.environ["CIRCUITS_CACHE"] = old


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder; the test fails if it is missing."""
    if not (DATA / "bvlc_googlenet" / "caffejs_weights").is_dir():
        pytest.fail(f"real data not found at {DATA} (set CIRCUITS_DATA to the shared/data folder)")
    return DATA


@pytest.fixture(scope="session")
def images_dir(data_dir) -> Path:
    p = data_dir / "imagenet-sample-1000"
    if not p.is_dir():
        pytest.fail(f"sample images not found at {p}")
    return p


@pytest.fixture(scope="session")
def caffe_model(data_dir):
    """BVLC GoogLeNet with the real weights (read-only: tests must not modify it)."""
    from circuits import load_model

    return load_model("inceptionv1_caffe")


@pytest.fixture(scope="session")
def sample_batch(images_dir):
    """``sample_batch(start, n)`` → ``(n, 3, 224, 224)`` sample images ``start … start+n`` in
    sorted order, through the standard evaluation preprocessing (``studies.measure.images.load_image``)."""
    from studies.measure.images import load_image

    def load(start: int = 0, n: int = 4) -> torch.Tensor:
        paths = sorted(images_dir.glob("*.JPEG"))[start:start + n]
        assert len(paths) == n
        return torch.stack([load_image(p) for p in paths])

    return load


@pytest.fixture(scope="session")
def ray_local():
    """A local single-node Ray instance (2 CPUs, no dashboard) for the whole test session,
    started by the first test that asks for it and shut down at the end. Ray is a test
    requirement (``pip install -e '.[test,ray]'``): without it these tests fail."""
    import ray
    started = not ray.is_initialized()
    if started:
        # address="local": always a new instance (never a cluster a stale /tmp/ray/ray_current_cluster names)
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    if started:
        ray.shutdown()
