"""Forward speed: our InceptionV1 vs torchvision's GoogLeNet (same family of architecture,
random weights, eval mode, no input transform), batch 1 and batch 64, float32; and the
machine's limit: achieved GFLOP/s vs a large float32 matmul measured in the same run."""

from __future__ import annotations

import time

import torch
import torchvision

from circuits.model import InceptionV1


def _best(fn, reps: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def flops_of(model, x) -> float:
    """Multiply-adds × 2 of every conv/linear in one forward (counted with forward hooks)."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, torch.nn.Conv2d):
            total += 2 * out.numel() * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, torch.nn.Linear):
            total += 2 * out.numel() * mod.in_features

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model(x)
    for h in hs:
        h.remove()
    return float(total)


def matmul_peak(n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    t = _best(lambda: a @ b, reps)
    return 2 * n ** 3 / t / 1e9


def run() -> dict:
    torch.manual_seed(0)
    ours = InceptionV1("inceptionv1_caffe").eval()
    tv = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False, transform_input=False).eval()
    out = {}
    for bs, reps in ((1, 20), (64, 3)):
        x = torch.rand(bs, 3, 224, 224)
        with torch.inference_mode():
            t_ours = _best(lambda x=x: ours(x), reps)
            t_tv = _best(lambda x=x: tv(x), reps)
            xc = x.contiguous(memory_format=torch.channels_last)
            ours_cl = InceptionV1("inceptionv1_caffe").eval().to(memory_format=torch.channels_last)
            t_cl = _best(lambda xc=xc, m=ours_cl: m(xc), reps)
        out[f"batch{bs}_ours_ms"] = round(t_ours * 1e3, 1)
        out[f"batch{bs}_torchvision_ms"] = round(t_tv * 1e3, 1)
        out[f"batch{bs}_ours_channels_last_ms"] = round(t_cl * 1e3, 1)
        out[f"batch{bs}_speed_ratio_torchvision_over_ours (target >= 1)"] = round(t_tv / min(t_ours, t_cl), 2)
        if bs == 64:
            gf = flops_of(ours, x) / min(t_ours, t_cl) / 1e9
            out["classification_gflops"] = round(gf, 1)
    peak = matmul_peak()
    out["matmul_peak_gflops"] = round(peak, 1)
    out["classification_fraction_of_peak"] = round(out["classification_gflops"] / peak, 3)
    return out
