"""``python -m bench [NAME ...]``: run the benchmarks, print a table, write bench/results.json."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import platform
import sys
import time
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("CIRCUITS_DATA", str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", min(2, os.cpu_count() or 1))))
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    results = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                           "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()},
               "benchmarks": {}}
    for name in names:
        mod = importlib.import_module(f"bench.{name}")
        t0 = time.perf_counter()
        print(f"== {name} ...", file=sys.stderr, flush=True)
        res = mod.run()
        res["wall_s"] = round(time.perf_counter() - t0, 2)
        results["benchmarks"][name] = res
    print(f"\n{'benchmark':<28} {'metric':<44} value")
    for name, res in results["benchmarks"].items():
        for k, v in res.items():
            print(f"{name:<28} {k:<44} {v:.4g}" if isinstance(v, float) else f"{name:<28} {k:<44} {v}")
    out = here / "results.json"
    if argv and out.exists():  # a subset: keep the other rows of the last run
        old = json.loads(out.read_text()).get("benchmarks", {})
        results["benchmarks"] = {**old, **results["benchmarks"]}
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
