"""Maximum pre-ReLU activation of each BVLC ``mixed3b/curves`` unit over the 1000 sample images
(224-px centre crops, ``studies.classify.load_image``; every spatial position), pinned in
``tests/real/featurevis_dataset_max.json`` for the feature-visualization science test.

Regenerate (about a minute on 2 cores)::

    CIRCUITS_DATA=/path/to/shared/data python -m bench.featurevis_dataset_max
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from circuits import load_model
from circuits.catalog import catalog
from studies.measure.images import list_images as image_files
from studies.measure.images import load_image

OUT = Path(__file__).resolve().parents[1] / "tests" / "real" / "featurevis_dataset_max.json"


@torch.no_grad()
def dataset_max(batch: int = 50) -> dict:
    model = load_model("inceptionv1_caffe")
    fam = catalog(model)["mixed3b/curves"]
    idx = list(fam.units)
    files = image_files(Path(os.environ["CIRCUITS_DATA"]) / "imagenet-sample-1000")
    best = torch.full((len(idx),), -float("inf"))
    where = [""] * len(idx)
    for s in range(0, len(files), batch):
        x = torch.stack([load_image(p) for p in files[s:s + batch]])
        a = model.run(x, ["mixed3b_pre_relu"])["mixed3b_pre_relu"][:, idx].amax((2, 3))  # (B, units)
        m, arg = a.max(0)
        for j in range(len(idx)):
            if m[j] > best[j]:
                best[j], where[j] = m[j], files[s + int(arg[j])].name
    return {"source": "python -m bench.featurevis_dataset_max", "images": len(files),
            "measure": "max over images and positions of the pre-ReLU mixed3b activation, 224-px centre crops",
            "max": {f"mixed3b:{u}": round(float(b), 2) for u, b in zip(idx, best)},
            "argmax_image": {f"mixed3b:{u}": w for u, w in zip(idx, where)}}


if __name__ == "__main__":
    os.environ.setdefault("CIRCUITS_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", 2)))
    res = dataset_max()
    OUT.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res["max"], indent=1))
    print(f"wrote {OUT}")
