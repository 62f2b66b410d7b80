"""Checkpoints: import, verify, cache and load the weights of both InceptionV1 models.

* ``inceptionv1_caffe`` (BVLC GoogLeNet) is imported from the public caffejs per-layer
  files (raw little-endian float32; filters stored ``(out, kh, kw, in)``), every file checked
  against SHA-256 values pinned in this package, and converted once to a canonical
  safetensors file in the user cache.
* ``inceptionv1`` (Lucid's inception5h) loads from either public ``.pth`` layout (lucent's
  ``conv2d0_pre_relu_conv.weight`` names or captum's ``conv1.weight`` / ``mixed3a.conv_1x1``
  names) with ``torch.load(weights_only=True)``. Those weights are not on the development
  machine: only the name/shape mapping is tested.

The cache folder is ``$CIRCUITS_CACHE`` if set, else ``$XDG_CACHE_HOME/circuits``, else
``~/.cache/circuits``. Every problem (missing, truncated, corrupt, wrong-shape or
wrong-checksum file) raises :class:`WeightsError` naming the file and what was expected.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from .names import CONV_LAYERS, hook_name, module_path, param_key
from .spec import MIXED_LAYERS, ModelSpec, get_spec

#: Public source of the BVLC weights (GitHub repository chaosmail/caffejs, branch gh-pages).
CAFFEJS_COMMIT = "d161d610145d6ce1ee4b9e44b10de780e8ecec2d"
CAFFEJS_URL = f"https://raw.githubusercontent.com/chaosmail/caffejs/{CAFFEJS_COMMIT}/models/bvlc_googlenet/"
#: Public source of the label lists: lucent's labels for inception5h; the standard
#: ILSVRC-2012 synset list (the one distributed with Caffe's ``get_ilsvrc_aux.sh``).
LABEL_URLS = {
    "synset_words.txt": "https://raw.githubusercontent.com/HoldenCaulfieldRye/caffe/master/data/ilsvrc12/synset_words.txt",
    "inceptionv1_lucid/labels_wnid_index_name.txt":
        "https://raw.githubusercontent.com/greentfrapp/lucent/master/lucent/modelzoo/misc/old_imagenet_labels.txt",
}
CANONICAL_NAMES = {"inceptionv1_caffe": "inceptionv1_caffe.safetensors", "inceptionv1": "inceptionv1.safetensors"}
_BRANCH_CAFFE = {
    "1x1": "1x1", "3x3_bottleneck": "3x3_reduce", "3x3": "3x3",
    "5x5_bottleneck": "5x5_reduce", "5x5": "5x5", "pool_reduce": "pool_proj",
}


class WeightsError(RuntimeError):
    """A weights file is missing, corrupt, truncated, of the wrong shape or checksum."""


# --------------------------------------------------------------------------- locations
def cache_dir() -> Path:
    """The user cache folder for canonical weight files (created on demand)."""
    if os.environ.get("CIRCUITS_CACHE"):
        return Path(os.environ["CIRCUITS_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "circuits"


def data_dir() -> Path | None:
    """The folder given by ``$CIRCUITS_DATA`` (the layout of ``shared/data``), or ``None``."""
    d = os.environ.get("CIRCUITS_DATA")
    return Path(d).expanduser() if d else None


def canonical_path(checkpoint: str) -> Path:
    """Where the canonical safetensors file of ``checkpoint`` lives in the cache."""
    return cache_dir() / CANONICAL_NAMES[get_spec(checkpoint).name]


def pinned_checksums(kind: str = "bvlc_googlenet") -> dict[str, str]:
    """``{relative path: sha256}`` pinned in the package (``bvlc_googlenet`` or ``labels``)."""
    text = resources.files("circuits").joinpath(f"data/{kind}.sha256").read_text()
    out = {}
    for line in text.splitlines():
        if line.strip():
            digest, rel = line.split(maxsplit=1)
            out[rel.strip()] = digest
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- key maps
def caffe_layer_names(spec: ModelSpec) -> dict[str, str]:
    """``{our module prefix: caffe layer path}``, e.g. ``mixed3a.b3x3_bottleneck.conv`` →
    ``inception_3a/3x3_reduce``."""
    m = {module_path(c): caffe for c, caffe in zip(CONV_LAYERS, ("conv1/7x7_s2", "conv2/3x3_reduce", "conv2/3x3"))}
    for layer in MIXED_LAYERS:
        for ours, caffe in _BRANCH_CAFFE.items():
            m[module_path(layer, ours)] = f"inception_{layer[5:]}/{caffe}"
    m["classifier"] = "loss3/classifier"
    return m


def expected_shapes(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """``{state-dict key: shape}`` of the model built from ``spec``."""
    from .model import InceptionV1

    with torch.device("meta"):
        model = InceptionV1(spec)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def lucent_key_map(spec: ModelSpec) -> dict[str, str]:
    """``{lucent key: our key}`` for lucent's inception5h ``.pth``."""
    m = {}
    for layer in CONV_LAYERS:  # lucent names each convolution after its pre-ReLU activation
        for p in ("weight", "bias"):
            m[f"{hook_name(layer, pre_relu=True)}_conv.{p}"] = param_key(layer, None, p)
    for layer in MIXED_LAYERS:
        for conv in _BRANCH_CAFFE:
            for p in ("weight", "bias"):
                m[f"{hook_name(layer, conv, pre_relu=True)}_conv.{p}"] = param_key(layer, conv, p)
    for p in ("weight", "bias"):
        m[f"softmax2_pre_activation_matmul.{p}"] = f"classifier.{p}"
    return m


def captum_key_map(spec: ModelSpec) -> dict[str, str]:
    """``{captum key: our key}`` for captum's (optim-wip) inception5h ``.pth``."""
    cap = {"1x1": "conv_1x1", "3x3_bottleneck": "conv_3x3_reduce", "3x3": "conv_3x3",
           "5x5_bottleneck": "conv_5x5_reduce", "5x5": "conv_5x5", "pool_reduce": "pool_proj"}
    m = {}
    for layer, name in zip(CONV_LAYERS, ("conv1", "conv2", "conv3")):
        for p in ("weight", "bias"):
            m[f"{name}.{p}"] = param_key(layer, None, p)
    for layer in MIXED_LAYERS:
        for ours, theirs in cap.items():
            for p in ("weight", "bias"):
                m[f"{layer}.{theirs}.{p}"] = param_key(layer, ours, p)
    for p in ("weight", "bias"):
        m[f"fc.{p}"] = f"classifier.{p}"
    return m


# --------------------------------------------------------------------------- BVLC import
def _check_file(path: Path, rel: str, pinned: Mapping[str, str]) -> None:
    if not path.is_file():
        raise WeightsError(f"missing weights file {path} (expected {rel} of the caffejs BVLC GoogLeNet export)")
    found = sha256_file(path)
    if found != pinned[rel]:
        raise WeightsError(
            f"checksum mismatch for {path}: expected sha256 {pinned[rel]}, found {found} "
            f"(size {path.stat().st_size} bytes); the file is corrupt, truncated or not the pinned release"
        )


def read_caffejs(src: Path | str, spec: ModelSpec | str = "inceptionv1_caffe") -> dict[str, torch.Tensor]:
    """Read and verify the caffejs per-layer files of BVLC GoogLeNet.

    Args:
        src: the ``bvlc_googlenet`` folder (holding ``caffejs_weights/`` and ``deploy.prototxt``).

    Returns:
        Our state dict: conv weights ``(out, in, kh, kw)`` float32, biases ``(out,)``,
        ``classifier.weight`` ``(1000, 1024)``.

    Raises:
        WeightsError: a missing file, a SHA-256 mismatch or a size that does not match the
            expected shape; the message names the file and expected vs found.
    """
    spec = get_spec(spec)
    src = Path(src).expanduser()
    if not src.is_dir():
        raise WeightsError(f"BVLC weights folder {src} does not exist (expected a folder with caffejs_weights/)")
    pinned = pinned_checksums()
    shapes = expected_shapes(spec)
    state: dict[str, torch.Tensor] = {}
    for ours, caffe in caffe_layer_names(spec).items():
        for p, suffix in (("weight", "filter"), ("bias", "bias")):
            rel = f"caffejs_weights/{caffe}_{suffix}.bin"
            path = src / rel
            _check_file(path, rel, pinned)
            shape = shapes[f"{ours}.{p}"]
            raw = np.fromfile(path, dtype="<f4")
            if raw.size != int(np.prod(shape)):
                raise WeightsError(
                    f"{path}: expected {int(np.prod(shape))} float32 values for {ours}.{p} {shape}, found {raw.size}"
                )
            if p == "weight" and len(shape) == 4:
                o, i, kh, kw = shape
                arr = raw.reshape(o, kh, kw, i).transpose(0, 3, 1, 2)
            else:
                arr = raw.reshape(shape)
            t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
            if not torch.isfinite(t).all():
                raise WeightsError(f"{path}: contains NaN or infinite values")
            state[f"{ours}.{p}"] = t
    _check_file(src / "deploy.prototxt", "deploy.prototxt", pinned)
    return state


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the keys, shapes and bytes of a state dict (sorted by key)."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(k.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def apply_umask(path: str | Path, mode: int = 0o666) -> None:
    """``chmod path (mode & ~umask)``: files from ``tempfile.mkstemp`` are 0600 and folders from
    ``tempfile.mkdtemp`` 0700 (pass ``mode=0o777``); this gives them the permissions a plain
    ``open``/``mkdir`` would have given (issue 13: outputs respect the umask)."""
    mask = os.umask(0o022)
    os.umask(mask)
    os.chmod(path, mode & ~mask)


def save_safetensors_atomic(state: Mapping[str, torch.Tensor], path: str | Path, metadata: dict[str, str]) -> Path:
    """Write ``state`` (contiguous tensors) and string ``metadata`` to the safetensors file ``path``
    atomically: a temporary file in the same folder, the umask's permissions (:func:`apply_umask`),
    then one rename; the temporary file is removed on any failure. Creates the folder."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in state.items()}, tmp, metadata=metadata)
        apply_umask(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def save_canonical(state: Mapping[str, torch.Tensor], path: Path, checkpoint: str, source: str) -> Path:
    """Write a canonical safetensors file (atomically) with its digest in the metadata."""
    meta = {"checkpoint": checkpoint, "source": source, "digest": state_digest(state), "format": "circuits-1"}
    return save_safetensors_atomic(state, path, meta)


def _copy_labels(src_root: Path, dest: Path) -> list[Path]:
    pinned = pinned_checksums("labels")
    copied = []
    for rel, digest in pinned.items():
        p = src_root / rel
        if p.is_file() and sha256_file(p) == digest:
            out = dest / "labels" / Path(rel).name
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, out)
            copied.append(out)
    return copied


def import_bvlc(src: Path | str, dest: Path | str | None = None) -> Path:
    """Verify the caffejs files in ``src`` and write the canonical safetensors file.

    Also copies the label lists found beside ``src`` (``../synset_words.txt``,
    ``../inceptionv1_lucid/labels_wnid_index_name.txt``), when their checksums match,
    into the cache.

    Returns:
        The path of the canonical file (default: :func:`canonical_path`).

    Raises:
        WeightsError: see :func:`read_caffejs`.
    """
    src = Path(src).expanduser()
    state = read_caffejs(src)
    dest = Path(dest) if dest else canonical_path("inceptionv1_caffe")
    save_canonical(state, dest, "inceptionv1_caffe", f"caffejs@{CAFFEJS_COMMIT}")
    _copy_labels(src.parent, dest.parent)
    return dest


def load_safetensors(path: Path | str, spec: ModelSpec | str, verify: bool = True) -> dict[str, torch.Tensor]:
    """Load a canonical safetensors file and check every key and shape against ``spec``.

    Raises:
        WeightsError: unreadable file, wrong checkpoint, missing/unexpected keys, wrong shapes
            or (``verify``) a digest that does not match the stored one.
    """
    from safetensors import safe_open

    spec = get_spec(spec)
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types
        raise WeightsError(f"{path}: not a readable safetensors file ({e})") from e
    if meta.get("checkpoint") not in (None, spec.name):
        raise WeightsError(f"{path} holds checkpoint {meta.get('checkpoint')!r}, expected {spec.name!r}")
    check_state(state, spec, str(path))
    if verify and "digest" in meta and state_digest(state) != meta["digest"]:
        raise WeightsError(f"{path}: tensor contents do not match the digest stored at conversion; re-import it")
    return state


def check_state(state: Mapping[str, torch.Tensor], spec: ModelSpec, where: str) -> None:
    """Raise :class:`WeightsError` unless ``state`` has exactly the keys and shapes of ``spec``
    and every value is finite (NaN or ±inf weights are refused, naming the tensor)."""
    shapes = expected_shapes(spec)
    missing = sorted(set(shapes) - set(state))
    extra = sorted(set(state) - set(shapes))
    if missing or extra:
        raise WeightsError(
            f"{where}: parameters do not match {spec.name}: missing {missing[:6]}{'…' if len(missing) > 6 else ''}, "
            f"unexpected {extra[:6]}{'…' if len(extra) > 6 else ''}"
        )
    for k, shp in shapes.items():
        if tuple(state[k].shape) != shp:
            raise WeightsError(f"{where}: {k} has shape {tuple(state[k].shape)}, expected {shp}")
    check_finite(state, where)


def check_finite(state: Mapping[str, torch.Tensor], where: str) -> None:
    """Raise :class:`WeightsError` naming the first tensor with NaN or infinite values."""
    for k, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            n = int((~torch.isfinite(t)).sum())
            raise WeightsError(f"{where}: {k} has {n:,} NaN or infinite value(s)")


def convert_lucid_state_dict(sd: Mapping[str, torch.Tensor], where: str = "state dict") -> dict[str, torch.Tensor]:
    """Map a lucent- or captum-layout inception5h state dict to our parameter names.

    The layout is detected from the keys; captum's auxiliary heads (``aux1.*``, ``aux2.*``)
    are dropped. Shapes are checked against the ``inceptionv1`` spec.

    Raises:
        WeightsError: neither layout, missing or unexpected keys, non-tensor values or
            wrong shapes (the message names the file's own key and both shapes).
    """
    spec = get_spec("inceptionv1")
    shapes = expected_shapes(spec)
    keys = set(sd)
    layouts = (("lucent", lucent_key_map(spec)), ("captum", captum_key_map(spec)))
    for layout, kmap in layouts:
        if set(kmap) <= keys:
            extra = [str(k) for k in keys - set(kmap) if not str(k).startswith(("aux1.", "aux2."))]
            if extra:
                raise WeightsError(f"{where}: unexpected parameters for the {layout} layout: {sorted(extra)[:6]}")
            out = {}
            for theirs, ours in kmap.items():
                v = sd[theirs]
                if not isinstance(v, torch.Tensor):
                    raise WeightsError(f"{where}: {theirs} is a {type(v).__name__}, expected a tensor")
                if tuple(v.shape) != shapes[ours]:
                    raise WeightsError(
                        f"{where} ({layout} layout): {theirs} (our {ours}) has shape {tuple(v.shape)}, "
                        f"expected {shapes[ours]}"
                    )
                out[ours] = v.detach().to(torch.float32).contiguous()
            check_state(out, spec, f"{where} ({layout} layout)")
            return out
    # Neither layout complete: if one is mostly there, say which keys it lacks.
    layout, kmap = max(layouts, key=lambda lk: len(set(lk[1]) & keys))
    if len(set(kmap) & keys) >= len(kmap) // 2:
        missing = sorted(set(kmap) - keys)
        raise WeightsError(
            f"{where}: looks like the {layout} inception5h layout but lacks {len(missing)} parameter(s): "
            f"{missing[:6]}{'…' if len(missing) > 6 else ''}"
        )
    sample = sorted(map(str, keys))[:4]
    raise WeightsError(
        f"{where}: not an inception5h state dict in lucent's layout (e.g. 'conv2d0_pre_relu_conv.weight') "
        f"or captum's (e.g. 'conv1.weight', 'mixed3a.conv_1x1.weight'); found keys like {sample}"
    )


def load_lucid_pth(path: Path | str) -> dict[str, torch.Tensor]:
    """Load lucent's or captum's ``inception5h.pth`` with ``torch.load(weights_only=True)``."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"{path}: could not be read as a PyTorch state dict ({e})") from e
    if not isinstance(sd, Mapping):
        raise WeightsError(f"{path}: expected a state dict, found {type(sd).__name__}")
    return convert_lucid_state_dict(sd, str(path))


def import_lucid(pth: Path | str, dest: Path | str | None = None) -> Path:
    """Convert an inception5h ``.pth`` (lucent or captum layout) to the canonical file."""
    state = load_lucid_pth(pth)
    dest = Path(dest) if dest else canonical_path("inceptionv1")
    return save_canonical(state, dest, "inceptionv1", f"pth:{Path(pth).name}")


# --------------------------------------------------------------------------- fetch
def fetch(checkpoint: str, dest: Path | str | None = None, timeout: float = 30.0) -> Path:
    """Download the public BVLC files at the pinned commit, verify them and import them.

    Raises:
        WeightsError: no network, an HTTP error or a checksum mismatch; the message says
            how to use local files instead.
    """
    spec = get_spec(checkpoint)
    if spec.name != "inceptionv1_caffe":
        raise WeightsError(
            "inceptionv1 (inception5h) has no pinned public source in this package; download lucent's or "
            "captum's inception5h.pth yourself and run `circuits weights import --checkpoint inceptionv1 --from FILE.pth`"
        )
    root = Path(dest) if dest else cache_dir() / "bvlc_googlenet"
    pinned = pinned_checksums()
    try:
        for rel, digest in pinned.items():
            out = root / rel
            if out.is_file() and sha256_file(out) == digest:
                continue
            url = CAFFEJS_URL + ("weights/" + rel[len("caffejs_weights/"):] if rel.startswith("caffejs_weights/") else rel)
            out.parent.mkdir(parents=True, exist_ok=True)
            with urllib.request.urlopen(url, timeout=timeout) as r, open(str(out) + ".part", "wb") as f:
                shutil.copyfileobj(r, f)
            os.replace(str(out) + ".part", out)
        for rel, url in LABEL_URLS.items():
            out = root.parent / rel
            if not out.is_file():
                try:
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with urllib.request.urlopen(url, timeout=timeout) as r, open(out, "wb") as f:
                        shutil.copyfileobj(r, f)
                except (urllib.error.URLError, OSError):
                    pass
    except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as e:
        raise WeightsError(
            f"could not download the BVLC GoogLeNet files ({e}). Without network access, point at local copies: "
            f"`circuits weights import --from /path/to/bvlc_googlenet` (a folder with caffejs_weights/ and "
            f"deploy.prototxt, e.g. $CIRCUITS_DATA/bvlc_googlenet), or pass --weights FILE.safetensors"
        ) from e
    return import_bvlc(root)
