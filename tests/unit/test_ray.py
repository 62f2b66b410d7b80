"""The Ray executor (studies.run.executors.RayExecutor) on a local 2-CPU Ray instance: the same
tables as the local executor, a shared cache (resume across executors), retries when a task
raises or its worker process is killed, permanent failures reported per plan, the model put
in the object store once, and the CLI flag."""

from __future__ import annotations

import sys

import pytest

from studies.run.executors import RayExecutor, make_executor


def test_executor_errors_name_the_choices(monkeypatch):
    with pytest.raises(ValueError, match="choose one of local, ray"):
        make_executor("dask")
    with pytest.raises(ValueError, match="--executor ray only"):
        make_executor("local", address="auto")
    with pytest.raises(ValueError, match="gpus_per_task"):
        RayExecutor(gpus_per_task=-1)
    with pytest.raises(ValueError, match=r"1 GPU\(s\) \(--gpus-per-task\) but the Ray cluster has 0"):
        RayExecutor(gpus_per_task=1)._check_resources({"CPU": 2.0})
    with pytest.raises(ValueError, match="--cpus-per-task"):
        RayExecutor(cpus_per_task=4)._check_resources({"CPU": 2.0})
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ImportError, match=r"pip install -e '\.\[ray\]'"):
        make_executor("ray")
