"""Tuning measures on real BVLC weights: joint tuning in σ, radial tuning at 0.5°, curve vs
line, combing, angles vs curves, the ``circuits tune`` command, and errors before compute."""

from __future__ import annotations

import pytest
import torch

from circuits import InceptionV1
from studies.cli import main
from studies.measure import tuning as T


def test_measures_work_for_the_lucid_architecture():
    """Nothing is specific to one checkpoint (Lucid's geometry, random weights)."""
    torch.manual_seed(1)
    m = InceptionV1("inceptionv1").eval()
    units = ["3b:379", "3a:81", "conv2d2:146"]
    sw = T.joint_sweep(m, units, orientation_step=45, radii=[10, 40])
    b = T.best_stimulus(m, units, tuning=sw, radii=[10, 40])
    comb = T.combing_index(m, units, best=b, sides=("inward",))
    av = T.angle_vs_curve(m, units, best=b, opening_degrees=(90,), corner_radii=(0,))
    assert len(comb) == 3 and len(av) == 3 * 2 and set(sw["layer"]) == {"mixed3b", "mixed3a", "conv2d2"}


@pytest.mark.parametrize("args,match", [
    (["3b:999"], "0..479"),
    (["mixed3b/nothing"], "no family"),
    (["3b:358", "--radii", "-4"], "radii"),
    (["3b:358", "--orientation-step", "0"], "--orientation-step: 0 is out of range"),
    (["3b:358", "--images", "/nonexistent/folder"], "does not exist"),
])
def test_cli_tune_errors(tmp_path, capsys, args, match):
    out = tmp_path / "x"
    assert main(["tune", *args, "--out", str(out)]) == 2
    assert match in capsys.readouterr().err
    assert not out.exists()
