"""Shared fixtures. The real data is found through one setting: ``CIRCUITS_DATA``
(default: ``../shared/data`` beside the project root). Tests that need it fail — never
skip — when it is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CIRCUITS_DATA", ROOT.parent / "shared" / "data")).resolve()
os.environ["CIRCUITS_DATA"] = str(DATA)

torch.set_num_threads(min(2, os.cpu_count() or 1))


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
    sorted order, through the standard evaluation preprocessing (``studies.classify.load_image``)."""
    from studies.classify import load_image

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
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    if started:
        ray.shutdown()
