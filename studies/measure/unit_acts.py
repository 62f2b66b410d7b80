"""Pre-ReLU activations of a few channels of a layer, fast: the model's own (unobserved,
chunked) forward pass up to the stage before the layer, then only the branches and rows of
the inception block that hold the wanted channels.

Used by the streamed dataset pass (:func:`studies.dataset.unit_statistics`): for the 19
mixed3b curve units this skips most of mixed3b (the 1x1 rows, the bottlenecks and the
wanted 3x3/5x5 rows only) and keeps the model's chunked CPU path, which an observed
forward (hooks) loses. The values equal ``model.run(x, [f"{layer}_pre_relu"])[...][:, ids]``
to float32 rounding (``tests/real/test_dataset_attribution.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from circuits.cone import fast_path_problem
from circuits.model import InceptionV1
from circuits.spec import MIXED_LAYERS

_BRANCHES = ("1x1", "3x3", "5x5", "pool_reduce")


def _branch_rows(blk, x: Tensor, branch: str, rows: Tensor) -> Tensor:
    """Pre-ReLU rows ``rows`` (branch-local) of one branch of ``blk`` on its input ``x``."""
    if branch == "1x1":
        c = blk.b1x1.conv
        return F.conv2d(x, c.weight[rows], c.bias[rows])
    if branch == "pool_reduce":
        c = blk.bpool_reduce.conv
        return F.conv2d(F.max_pool2d(x, 3, 1, 1), c.weight[rows], c.bias[rows])
    b = getattr(blk, f"b{branch}_bottleneck").conv
    c = getattr(blk, f"b{branch}").conv
    h = F.relu(F.conv2d(x, b.weight, b.bias))
    return F.conv2d(h, c.weight[rows], c.bias[rows], padding=c.kernel_size[0] // 2)


def block_rows(model: InceptionV1, layer: str, x: Tensor, ids: Sequence[int]) -> Tensor:
    """Pre-ReLU channels ``ids`` (block-global indices) of mixed ``layer`` from its input ``x``
    ``(N, C_in, H, W)`` → ``(N, len(ids), H, W)``, in the order of ``ids``. Only the needed
    branches and rows are computed."""
    blk = model.block(layer)
    widths = [getattr(blk, f"b{b}").conv.out_channels for b in _BRANCHES]
    starts = [sum(widths[:i]) for i in range(4)]
    out = [None] * len(ids)
    for bi, branch in enumerate(_BRANCHES):
        pos = [j for j, i in enumerate(ids) if starts[bi] <= i < starts[bi] + widths[bi]]
        if not pos:
            continue
        rows = torch.tensor([ids[j] - starts[bi] for j in pos], device=x.device)
        y = _branch_rows(blk, x, branch, rows)
        for k, j in enumerate(pos):
            out[j] = y[:, k]
    return torch.stack(out, 1)


@torch.no_grad()
def unit_pre_activations(model: InceptionV1, x: Tensor, by_layer: dict[str, list[int]]) -> dict[str, Tensor]:
    """``{layer: (N, len(ids), H, W)}`` pre-ReLU activations of channels ``ids`` of each layer
    for images ``x`` ``(N, 3, H, W)`` (RGB in [0, 1]).

    One mixed layer of an unedited-structure model without hooks takes the fast path (module
    docstring); anything else (several layers, conv layers, hooks, structural edits, linear
    surrogates) goes through :meth:`InceptionV1.run`.
    """
    if len(by_layer) == 1:
        layer, ids = next(iter(by_layer.items()))
        if layer in MIXED_LAYERS and fast_path_problem(model, layer) is None:
            prev = model.stage_names[model.stage_names.index(layer) - 1]
            return {layer: block_rows(model, layer, model(x, stop_at=prev), list(ids))}
    names = {layer: f"{layer}_pre_relu" for layer in by_layer}
    acts = model.run(x, list(names.values()))
    return {layer: acts[names[layer]][:, list(ids)] for layer, ids in by_layer.items()}
