"""The ``circuits`` command line.

Usage::

    circuits --version
    circuits weights where
    circuits weights import [--checkpoint inceptionv1_caffe|inceptionv1] [--from PATH] [--weights OUT]
    circuits weights verify [--checkpoint ...] [--weights FILE] [--from PATH]
    circuits weights fetch CHECKPOINT [--dest DIR] [--timeout S]
    circuits study curve-ablation --model M [--images DIR] --out DIR [--overwrite]
    circuits discover --model M --layer L --images DIR [--freeze]
    circuits tune UNIT|FAMILY ... --model M --out DIR [--images DIR] [--orientation-step DEG] [--radii PX ...]
    circuits edit validate PLAN [--model M]
    circuits edit apply PLAN --model M --out FILE [--reference DIR]
    circuits edit diff PLAN --model M [--reference DIR] [--json]

Adding a subcommand: write ``_add_<name>(subparsers)`` (creates its parser and calls
``set_defaults(func=_cmd_<name>)``) and ``_cmd_<name>(args) -> int``, and append
``_add_<name>`` to :data:`COMMANDS` at the bottom of this file. Subcommands that run a model
take ``--device`` through :func:`_add_device_arg` and read it with :func:`_device`.

Errors the user can fix (a missing or corrupt weights file, an unknown name, a bad value)
are printed as ``circuits: error: <message>`` on stderr with exit status 2, without a
traceback (``--traceback`` shows it). ``weights verify`` exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

PROG = "circuits"

#: Exceptions from the library that mean "the user has to fix something": printed as one
#: line, exit status 2. (``WeightsError`` is added lazily to keep ``--help`` fast.)
USER_ERRORS: tuple[type[BaseException], ...] = (KeyError, FileNotFoundError, ValueError)


class VerifyFailed(Exception):
    """A ``weights verify`` check failed (exit status 1)."""


# --------------------------------------------------------------------------- helpers
def _version() -> str:
    from circuits import __version__

    return f"{PROG} {__version__}"


def _message(e: BaseException) -> str:
    """The human message of an exception (``KeyError`` would otherwise print its repr)."""
    if isinstance(e, KeyError) and len(e.args) == 1 and isinstance(e.args[0], str):
        return e.args[0]
    if isinstance(e, OSError) and e.filename and str(e.filename) not in str(e):
        return f"{e.strerror or e}: {e.filename}"
    return str(e) or type(e).__name__


def _error(msg: str) -> None:
    print(f"{PROG}: error: {msg}", file=sys.stderr)


def checkpoint_arg(value: str) -> str:
    """argparse ``type=``: a checkpoint name or alias → its canonical name."""
    from circuits.spec import get_spec

    try:
        return get_spec(value).name
    except KeyError as e:
        raise argparse.ArgumentTypeError(_message(e)) from None


def _add_checkpoint_arg(p: argparse.ArgumentParser, default: str | None = "inceptionv1_caffe") -> None:
    p.add_argument(
        "--checkpoint", "--model", dest="checkpoint", type=checkpoint_arg, default=default, metavar="NAME",
        help="inceptionv1_caffe (BVLC GoogLeNet) or inceptionv1 (Lucid's inception5h)"
        + (f"; default {default}" if default else ""),
    )


def _add_device_arg(p: argparse.ArgumentParser) -> None:
    """Add ``--device`` (read it with :func:`_device`)."""
    p.add_argument("--device", default=None, help="cpu (default), cuda, cuda:N, mps or auto")


def _add_executor_args(p: argparse.ArgumentParser) -> None:
    """Add ``--executor/--address/--gpus-per-task/--cpus-per-task/--max-retries`` (read them
    with :func:`_executor_settings`)."""
    g = p.add_argument_group("where the sweep's tasks run (studies.executors)")
    g.add_argument("--executor", default="local", choices=["local", "ray"],
                   help="local (this machine; default) or ray (a Ray cluster; needs pip install -e '.[ray]')")
    g.add_argument("--address", default=None, metavar="auto|HOST:PORT",
                   help="Ray cluster to join (default: start a local Ray instance)")
    g.add_argument("--gpus-per-task", type=float, default=0, metavar="N", help="GPUs per Ray task (default 0)")
    g.add_argument("--cpus-per-task", type=int, default=1, metavar="N",
                   help="CPUs (torch threads) per Ray task (default 1)")
    g.add_argument("--max-retries", type=int, default=2, metavar="N",
                   help="retries of a task that fails or whose worker dies (default 2)")


def _executor_settings(args: argparse.Namespace) -> dict:
    """The executor options as a dict for a study config (checked by building the executor
    once, so a missing Ray or a bad setting fails before any compute)."""
    from .executors import make_executor

    settings = {"name": args.executor, "max_retries": args.max_retries}
    ray_only = {"address": args.address, "gpus_per_task": args.gpus_per_task}
    if args.executor == "ray":
        settings.update(ray_only, cpus_per_task=args.cpus_per_task)
    make_executor(**{**ray_only, **settings}, jobs=getattr(args, "jobs", 1) or 1)  # refuses ray-only options for local
    return settings


def _device(args: argparse.Namespace):
    """The ``torch.device`` asked for by ``--device`` (``cpu`` when absent).

    ``auto`` picks ``cuda`` when available, else ``cpu``.

    Raises:
        ValueError: an unknown device string, or a CUDA/MPS device that is not available.
    """
    import torch

    name = getattr(args, "device", None) or "cpu"
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as e:
        raise ValueError(f"--device {name!r} is not a device ({e}); use cpu, cuda, cuda:N, mps or auto") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {name}: MPS is not available on this machine; use --device cpu")
    return dev


def _canonical_meta(path: Path) -> dict[str, str]:
    """Metadata of a canonical safetensors file (``{}`` when unreadable)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception:
        return {}


def _describe_state(state) -> str:
    n = sum(int(t.numel()) for t in state.values())
    return f"{len(state)} tensors, {n:,} parameters"


# --------------------------------------------------------------------------- weights
def _add_weights(subparsers) -> None:
    p = subparsers.add_parser(
        "weights", help="import, verify, locate or download checkpoint weights",
        description="Manage the weights of the two InceptionV1 checkpoints (canonical safetensors files in the "
                    "user cache: $CIRCUITS_CACHE, else $XDG_CACHE_HOME/circuits, else ~/.cache/circuits).",
    )
    p.set_defaults(func=_cmd_weights, _parser=p)
    sub = p.add_subparsers(dest="weights_command", metavar="ACTION")

    q = sub.add_parser("import", help="convert local weights into the canonical file",
                       description="BVLC: --from is a caffejs bvlc_googlenet folder (every file checked against "
                                   "pinned SHA-256 values; default $CIRCUITS_DATA/bvlc_googlenet). Lucid: --from "
                                   "is lucent's or captum's inception5h .pth.")
    _add_checkpoint_arg(q)
    q.add_argument("--from", dest="source", metavar="PATH", help="caffejs bvlc_googlenet folder, or (inceptionv1) a .pth")
    q.add_argument("--weights", metavar="OUT", help="where to write the canonical file (default: the cache)")
    q.set_defaults(func=_cmd_weights_import)

    q = sub.add_parser("verify", help="check the canonical file (and the source files) against their digests",
                       description="Checks the canonical file's tensors against the digest stored at conversion "
                                   "and the checkpoint's shapes; with --from, also every source file's SHA-256 "
                                   "against the values pinned in the package. Exit 1 on any failure.")
    _add_checkpoint_arg(q)
    q.add_argument("--weights", metavar="FILE", help="canonical .safetensors file (default: the cache)")
    q.add_argument("--from", dest="source", metavar="PATH", help="caffejs bvlc_googlenet folder, or (inceptionv1) a .pth")
    q.set_defaults(func=_cmd_weights_verify)

    q = sub.add_parser("where", help="show the cache folder and the canonical files")
    _add_checkpoint_arg(q, default=None)
    q.set_defaults(func=_cmd_weights_where)

    q = sub.add_parser("fetch", help="download the public BVLC files (needs internet), verify and import them")
    q.add_argument("checkpoint", type=checkpoint_arg, metavar="CHECKPOINT", help="inceptionv1_caffe")
    q.add_argument("--dest", metavar="DIR", help="folder for the downloaded files (default: <cache>/bvlc_googlenet)")
    q.add_argument("--timeout", type=float, default=20.0, metavar="S", help="seconds per request (default 20)")
    q.set_defaults(func=_cmd_weights_fetch)


def _cmd_weights(args: argparse.Namespace) -> int:
    """``circuits weights`` without an action: show its help."""
    args._parser.print_help(sys.stderr)
    return 2


def _default_source(checkpoint: str) -> Path:
    from circuits.weights import data_dir

    if checkpoint == "inceptionv1_caffe":
        d = data_dir()
        if d is None:
            raise ValueError(
                "no source given: pass --from /path/to/bvlc_googlenet (the caffejs folder) or set CIRCUITS_DATA"
            )
        return d / "bvlc_googlenet"
    raise ValueError("no source given: pass --from /path/to/inception5h.pth (lucent's or captum's file)")


def _cmd_weights_import(args: argparse.Namespace) -> int:
    from circuits import weights as W

    src = Path(args.source).expanduser() if args.source else _default_source(args.checkpoint)
    out = Path(args.weights).expanduser() if args.weights else None
    if args.checkpoint == "inceptionv1_caffe":
        if src.is_file():
            raise ValueError(f"--from {src} is a file; inceptionv1_caffe needs the caffejs bvlc_googlenet folder")
        path = W.import_bvlc(src, out)
    else:
        if src.is_dir():
            raise ValueError(f"--from {src} is a folder; inceptionv1 needs lucent's or captum's inception5h .pth")
        path = W.import_lucid(src, out)
    state = W.load_safetensors(path, args.checkpoint)
    meta = _canonical_meta(path)
    print(f"imported {args.checkpoint} from {src}")
    print(f"wrote {path}")
    print(f"digest {meta.get('digest', W.state_digest(state))} ({_describe_state(state)})")
    print(f"sha256 {W.sha256_file(path)} (file)")
    return 0


def _verify_bvlc_sources(src: Path):
    """Check every pinned source file; yields an OK line per file, raises VerifyFailed on the first failure."""
    from circuits import weights as W

    if not src.is_dir():
        raise VerifyFailed(f"{src} is not a folder (expected the caffejs bvlc_googlenet folder)")
    pinned = W.pinned_checksums()
    for rel in pinned:
        try:
            W._check_file(src / rel, rel, pinned)
        except W.WeightsError as e:
            raise VerifyFailed(str(e)) from None
        yield f"OK {rel}"


def _cmd_weights_verify(args: argparse.Namespace) -> int:
    from circuits import weights as W

    ckpt = args.checkpoint
    path = Path(args.weights).expanduser() if args.weights else W.canonical_path(ckpt)
    src = Path(args.source).expanduser() if args.source else None
    n_ok = 0
    try:
        if src is not None:
            if ckpt == "inceptionv1_caffe":
                for line in _verify_bvlc_sources(src):
                    print(line)
                    n_ok += 1
                source_state = None  # read below only if a canonical file is compared
            else:
                try:
                    source_state = W.load_lucid_pth(src)
                except W.WeightsError as e:
                    raise VerifyFailed(str(e)) from None
                print(f"OK {src} ({_describe_state(source_state)})")
                n_ok += 1
        if not path.is_file() and args.weights is None and src is not None:
            print(f"-- {path}: no canonical file yet (run `circuits weights import`); source checked only")
        else:
            if not path.is_file():
                raise VerifyFailed(
                    f"weights file {path} does not exist" if args.weights else
                    f"no canonical file at {path}; run `circuits weights import --checkpoint {ckpt} --from SOURCE` first (SOURCE: a caffejs bvlc_googlenet folder or an inception5h .pth)"
                )
            try:
                state = W.load_safetensors(path, ckpt, verify=True)
            except W.WeightsError as e:
                raise VerifyFailed(str(e)) from None
            meta = _canonical_meta(path)
            if "digest" not in meta:
                raise VerifyFailed(f"{path}: no digest in its metadata (not written by circuits); re-import it")
            print(f"OK {path} digest {meta['digest']} ({_describe_state(state)})")
            n_ok += 1
            if src is not None:
                if ckpt == "inceptionv1_caffe":
                    try:
                        source_state = W.read_caffejs(src)
                    except W.WeightsError as e:
                        raise VerifyFailed(str(e)) from None
                if W.state_digest(source_state) != meta["digest"]:
                    raise VerifyFailed(f"{path} does not hold the tensors of {src}; re-import it")
                print(f"OK {path} matches {src}")
                n_ok += 1
    except VerifyFailed as e:
        print(f"FAILED ({n_ok} OK before the failure)", file=sys.stderr)
        _error(str(e))
        return 1
    print(f"verified: {n_ok} OK")
    return 0


def _cmd_weights_where(args: argparse.Namespace) -> int:
    from circuits import weights as W
    from circuits.spec import SPECS

    print(f"cache: {W.cache_dir()}")
    for ckpt in [args.checkpoint] if args.checkpoint else list(SPECS):
        p = W.canonical_path(ckpt)
        print(f"{ckpt}: {p} ({'exists' if p.is_file() else 'missing'})")
    for var in ("CIRCUITS_CACHE", "CIRCUITS_DATA"):
        print(f"{var}={os.environ[var]}" if os.environ.get(var) else f"{var} (unset)")
    d = W.data_dir()
    if d is not None:
        src = d / "bvlc_googlenet"
        print(f"BVLC source: {src} ({'found' if src.is_dir() else 'missing'})")
    return 0


def _cmd_weights_fetch(args: argparse.Namespace) -> int:
    from circuits import weights as W

    try:
        path = W.fetch(args.checkpoint, args.dest, timeout=args.timeout)
    except W.WeightsError as e:
        _error(str(e))
        return 2
    print(f"wrote {path}")
    meta = _canonical_meta(path)
    if "digest" in meta:
        print(f"digest {meta['digest']}")
    return 0


# --------------------------------------------------------------------------- study
def _add_study(subparsers) -> None:
    p = subparsers.add_parser("study", help="run a study and write a report folder")
    sub = p.add_subparsers(dest="study", metavar="STUDY")
    q = sub.add_parser(
        "curve-ablation",
        help="discover a layer's curve family, zero-ablate it, measure tuning and classification",
        description="The main job: discover the curve family of --layer (default mixed3b), zero-ablate it on a "
        "copy of the model, and write radial tuning before/after, top-1/top-5 before/after (with --images), "
        "the edit as JSON, per-unit metrics and a markdown summary to --out.",
    )
    _add_checkpoint_arg(q)
    q.add_argument("--images", default=None, help="labelled image folder (<wnid>_*.JPEG or <wnid>/); "
                   "without it, classification is skipped and the frozen family of the catalog is used")
    q.add_argument("--out", required=True, help="report folder (must be empty or absent unless --overwrite)")
    q.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    q.add_argument("--layer", default="mixed3b", help="layer whose curve family is ablated (default mixed3b)")
    q.add_argument("--weights", default=None, help="weights file (default: the user cache)")
    q.add_argument("--limit", type=int, default=None, help="classify only the first N images")
    q.add_argument("--batch-size", type=int, default=64)
    q.add_argument("--orientation-step", type=float, default=5.0, help="degrees between tuning orientations")
    q.add_argument("--no-downstream", action="store_true", help="skip the next layer's curve units")
    q.add_argument("--quiet", action="store_true", help="no progress output")
    _add_device_arg(q)
    _add_executor_args(q)
    q.set_defaults(func=_cmd_study_curve_ablation)
    _add_study_combing(sub)
    _add_study_echo(sub)
    _add_study_family_ablation(sub)
    w = sub.add_parser("sweep", help="evaluate many edit plans (files or every single-unit ablation of a family), "
                       "cached per plan; resumes when interrupted")
    _add_checkpoint_arg(w)
    w.add_argument("--images", default=None, help="labelled image folder to classify")
    w.add_argument("--tune", nargs="*", default=[], metavar="UNITS",
                   help="also measure radial tuning of these units / families (e.g. mixed3b/curves) under every plan")
    w.add_argument("--orientation-step", type=float, default=5.0, help="degrees between tuning orientations (default 5)")
    w.add_argument("--radii", type=int, default=16, help="curve radii, 8-200 px geometric (default 16)")
    w.add_argument("--plans", nargs="*", default=[], metavar="FILE", help="plan files (.json/.yaml)")
    w.add_argument("--single-unit-ablations", metavar="FAMILY|LAYER", help="add one Ablate per unit of FAMILY (e.g. mixed3b/curves) or of a whole LAYER (e.g. mixed3b: 480 plans)")
    w.add_argument("--mode", default="zero", choices=["zero", "resample"], help="ablation mode for --single-unit-ablations")
    w.add_argument("--limit", type=int, default=None)
    w.add_argument("--jobs", type=int, default=1, help="worker processes of the local executor")
    w.add_argument("--batch-size", type=int, default=64)
    w.add_argument("--plans-per-pass", type=int, default=8, help="plans per task, sharing the unedited prefix (default 8)")
    w.add_argument("--shard-size", type=int, default=None, help="images per task (default 16 × batch size)")
    w.add_argument("--stimulus-batch", type=int, default=512, help="stimuli per task (default 512)")
    w.add_argument("--cache-dir", default=None, help="per-plan result cache (default $CIRCUITS_CACHE/sweeps)")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--out", required=True)
    w.add_argument("--overwrite", action="store_true")
    w.add_argument("--quiet", action="store_true")
    _add_device_arg(w)
    _add_executor_args(w)
    w.set_defaults(func=_cmd_study_sweep)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def _add_study_family_ablation(sub) -> None:
    q = sub.add_parser(
        "family-ablation",
        help="zero/mean/resample-ablate curve families and random controls; accuracy with CIs",
        description="Ablate each curve family and K size-matched random unit sets (same branches) with each "
        "mode; top-1/top-5 change vs the unedited model with paired bootstrap CIs and McNemar tests, the "
        "classes most hurt, and a report folder. Results are cached per plan (resumable).",
    )
    _add_checkpoint_arg(q)
    q.add_argument("--images", required=True, help="labelled image folder (<wnid>_*.JPEG or <wnid>/)")
    q.add_argument("--out", required=True, help="report folder (must be empty or absent unless --overwrite)")
    q.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    q.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    q.add_argument("--families", default="conv2d2/curves,mixed3a/curves,mixed3b/curves,mixed4a/curves")
    q.add_argument("--modes", default="zero,mean,resample")
    q.add_argument("--controls", type=int, default=1, help="random control sets per family (default 1)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    q.add_argument("--reference-images", type=int, default=50, help="images for mean ablation (default 50)")
    q.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    q.add_argument("--plans-per-pass", type=int, default=8, help="plans evaluated in one pass (default 8)")
    q.add_argument("--cache-dir", default=None, help="per-plan result cache (default $CIRCUITS_CACHE/sweeps)")
    q.add_argument("--weights", default=None, help="weights file (default: the user cache)")
    q.add_argument("--batch-size", type=int, default=64)
    q.add_argument("--quiet", action="store_true", help="no progress output")
    _add_device_arg(q)
    _add_executor_args(q)
    q.set_defaults(func=_cmd_study_family_ablation)


def _cmd_study_family_ablation(args: argparse.Namespace) -> int:
    from .family_ablation import FamilyAblationConfig, run_family_ablation

    cfg = FamilyAblationConfig(
        model=args.checkpoint, images=args.images, weights=args.weights, limit=args.limit,
        families=args.families.split(","), modes=args.modes.split(","), controls=args.controls, seed=args.seed,
        bootstrap=args.bootstrap, reference_images=args.reference_images, jobs=args.jobs,
        plans_per_pass=args.plans_per_pass, batch_size=args.batch_size, device=str(_device(args)),
        executor=_executor_settings(args),
        cache_dir=args.cache_dir,
    )
    m = run_family_ablation(cfg, args.out, overwrite=args.overwrite, progress=not args.quiet)
    b = m["baseline"]
    print(f"unedited: top-1 {b['top1']:.4f}, top-5 {b['top5']:.4f} on {m['n_images']} images")
    for name, v in m["variants"].items():
        print(f"{name}: top-1 {v['top1_delta']:+.4f} [{v['top1_ci_low']:+.4f}, {v['top1_ci_high']:+.4f}] "
              f"p={v['top1_mcnemar_p']:.3g}; top-5 {v['top5_delta']:+.4f}")
    print(f"report: {args.out}/summary.md ({m['wall_time_s']} s)")
    return 0


def _cmd_study_curve_ablation(args: argparse.Namespace) -> int:
    from .curve_ablation import CurveAblationConfig, run_curve_ablation

    cfg = CurveAblationConfig(
        model=args.checkpoint, layer=args.layer, images=args.images, weights=args.weights, limit=args.limit,
        batch_size=args.batch_size, orientation_step=args.orientation_step, downstream=not args.no_downstream,
        device=str(_device(args)), executor=_executor_settings(args),
    )
    m = run_curve_ablation(cfg, args.out, overwrite=args.overwrite, progress=not args.quiet)
    c = m["classification"]
    print(f"family {m['family']['key']}: {len(m['family']['units'])} units {m['family']['units']}")
    if c:
        print(f"top-1 {c['top1_before']:.4f} -> {c['top1_after']:.4f} ({c['top1_change']:+.4f}); "
              f"top-5 {c['top5_before']:.4f} -> {c['top5_after']:.4f} ({c['top5_change']:+.4f}) "
              f"on {c['n_images']} images")
    else:
        print("classification skipped (no --images)")
    print(f"report: {args.out}/summary.md ({m['wall_time_s']} s)")
    return 0


def _add_study_echo(sub) -> None:
    q = sub.add_parser(
        "echo", help="Curve Circuits echoes: radial tuning of mixed3b curves under the Linearize/PrunePathway edits",
        description="Radial tuning of the mixed3b curve family for (a) the unedited model, (b) its 3x3/5x5 units "
        "linearised, (c) driven only by mixed3a curves, (d) = (c) without their negative expanded weights; echo "
        "ratios, peaks, widths, top-1/top-5 per variant (with --images) and a report folder at --out.",
    )
    _add_checkpoint_arg(q)
    q.add_argument("--images", default=None, help="labelled image folder; without it classification is skipped")
    q.add_argument("--limit", type=int, default=None, help="classify only the first N images")
    q.add_argument("--out", required=True, help="report folder (must be empty or absent unless --overwrite)")
    q.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    q.add_argument("--orientation-step", type=float, default=5.0, help="degrees between tuning orientations")
    q.add_argument("--weights", default=None, help="weights file (default: the user cache)")
    q.add_argument("--batch-size", type=int, default=64)
    q.add_argument("--vis-steps", type=int, default=128,
                   help="feature-visualization steps for the before/after grid of the variants (0: no grid)")
    q.add_argument("--quiet", action="store_true", help="no progress output")
    _add_device_arg(q)
    _add_executor_args(q)
    q.set_defaults(func=_cmd_study_echo)


def _cmd_study_echo(args: argparse.Namespace) -> int:
    from .echo import VARIANTS, EchoConfig, run_echo

    cfg = EchoConfig(model=args.checkpoint, images=args.images, weights=args.weights, limit=args.limit,
                     batch_size=args.batch_size, orientation_step=args.orientation_step, device=str(_device(args)),
                     executor=_executor_settings(args), vis_steps=args.vis_steps)
    m = run_echo(cfg, args.out, overwrite=args.overwrite, progress=not args.quiet)
    for v in VARIANTS:
        r = m["variants"][v]
        acc = f"; top-1 {r['top1']:.4f} top-5 {r['top5']:.4f}" if "top1" in r else ""
        print(f"{v}: median echo ratio {r['median_echo_ratio']:.3f}, median peak {r['median_peak']:.1f}{acc}")
    if m["classification"] is None:
        print("classification skipped (no --images)")
    print(f"reproduces Lucid (median echo ≈0 → ≈0.2): {'yes' if m['reproduces_lucid'] else 'no'}")
    print(f"report: {args.out}/summary.md ({m['wall_time_s']} s)")
    return 0


def _add_study_combing(sub) -> None:
    q = sub.add_parser(
        "combing", help="measure combing of curve units, prune the pathways that carry it, re-measure",
        description="Combing index of the mixed3a/mixed3b curve units, attribution of (combed − plain) to the "
        "previous layer's units, exact PrunePathway edits of the top pathways, tuning/classification/attribution "
        "maps before/after (studies.combing).",
    )
    _add_checkpoint_arg(q)
    q.add_argument("--images", default=None, help="labelled image folder (classification and real-image maps)")
    q.add_argument("--out", required=True, help="report folder (must be empty or absent unless --overwrite)")
    q.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    q.add_argument("--weights", default=None, help="weights file (default: the user cache)")
    q.add_argument("--units", default=None, help="comma-separated units (default: mixed3a/curves + mixed3b/curves)")
    g = q.add_mutually_exclusive_group()
    g.add_argument("--top-pathways", type=int, default=8, help="sources pruned per unit (default 8)")
    g.add_argument("--share", type=float, default=None, help="prune the top sources reaching this share of the "
                   "positive attribution to combing")
    q.add_argument("--limit", type=int, default=None, help="classify only the first N images")
    q.add_argument("--batch-size", type=int, default=64)
    q.add_argument("--orientation-step", type=float, default=10.0, help="degrees between tuning orientations")
    q.add_argument("--map-images", type=int, default=64, help="images scanned for attribution maps")
    q.add_argument("--quiet", action="store_true", help="no progress output")
    _add_device_arg(q)
    _add_executor_args(q)
    q.set_defaults(func=_cmd_study_combing)


def _cmd_study_combing(args: argparse.Namespace) -> int:
    from .combing import CombingConfig, run_combing

    cfg = CombingConfig(
        model=args.checkpoint, images=args.images, weights=args.weights,
        units=[u.strip() for u in args.units.split(",") if u.strip()] if args.units else None,
        top_pathways=args.top_pathways, share=args.share, limit=args.limit, batch_size=args.batch_size,
        orientation_step=args.orientation_step, map_images=args.map_images, device=str(_device(args)),
        executor=_executor_settings(args),
    )
    m = run_combing(cfg, args.out, overwrite=args.overwrite, progress=not args.quiet)
    print(f"median combing index {m['median_combing_before']:.3f} -> {m['median_combing_after']:.3f}")
    c = m["classification"]
    print(f"top-1 {c['top1_before']:.4f} -> {c['top1_after']:.4f}; top-5 {c['top5_before']:.4f} -> "
          f"{c['top5_after']:.4f}" if c else "classification skipped (no --images)")
    print(f"report: {args.out}/summary.md ({m['wall_time_s']} s)")
    return 0


def _cmd_study_sweep(args: argparse.Namespace) -> int:
    from .sweep_cmd import SweepConfig, run_sweep_study

    cfg = SweepConfig(model=args.checkpoint, images=args.images or "", plans=list(args.plans),
                      single_unit_ablations=args.single_unit_ablations, mode=args.mode, limit=args.limit,
                      jobs=args.jobs, batch_size=args.batch_size, device=str(_device(args)), seed=args.seed,
                      tune=list(args.tune), orientation_step=args.orientation_step, radii=args.radii,
                      plans_per_pass=args.plans_per_pass, shard_size=args.shard_size,
                      stimulus_batch=args.stimulus_batch, cache_dir=args.cache_dir,
                      executor=_executor_settings(args))
    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    m = run_sweep_study(cfg, args.out, overwrite=args.overwrite, progress=not args.quiet, log=log)
    failed = f"; {len(m['failed'])} plan(s) FAILED (see summary.md)" if m["failed"] else ""
    print(f"{m['variants']} plans + unedited: computed {len(m['computed'])}, loaded {len(m['loaded_from_cache'])} "
          f"from the cache ({m['tasks']} task(s) on the {m['executor']['executor']} executor){failed}; "
          f"report: {args.out}/summary.md")
    return 0


# --------------------------------------------------------------------------- discover
def _add_discover(subparsers) -> None:
    p = subparsers.add_parser(
        "discover", help="find a layer's curve family from synthetic curves and lines",
        description="Curve-family discovery (criteria: studies.discovery). With --freeze, writes the family "
        "into the packaged catalog of the checkpoint.",
    )
    _add_checkpoint_arg(p)
    p.add_argument("--layer", default="mixed3b")
    p.add_argument("--images", required=True, help="reference image folder for the dataset σ")
    p.add_argument("--min-sigma", type=float, default=None, help="default: the layer's (studies.discovery)")
    p.add_argument("--min-curve-line", type=float, default=None, help="default: the layer's")
    p.add_argument("--min-selectivity", type=float, default=None, help="default: the layer's")
    p.add_argument("--weights", default=None)
    p.add_argument("--csv", default=None, help="write the per-unit table here")
    p.add_argument("--freeze", action="store_true", help="write the family into the packaged catalog")
    _add_device_arg(p)
    p.set_defaults(func=_cmd_discover)


def _cmd_discover(args: argparse.Namespace) -> int:
    from circuits import load_model

    from .discovery import discover_curves, freeze_family, load_reference_images, reference_statistics

    model = load_model(args.checkpoint, weights=args.weights, device=_device(args))
    ref = load_reference_images(args.images, 100)
    d = discover_curves(model, args.layer, reference_statistics(model, args.layer, ref), min_sigma=args.min_sigma,
                        min_curve_line=args.min_curve_line, min_selectivity=args.min_selectivity)
    fam = d.family
    print(f"{fam.key}: {len(fam)} units")
    for u, o in zip(fam.units, fam.orientations or ()):
        print(f"  {fam.layer}:{u}  preferred {o:.1f}°")
    if args.csv:
        d.table.to_csv(args.csv, index=False)
    if args.freeze:
        opts = "".join(f" --{k.replace('_', '-')} {v:g}" for k, v in
                       (("min_sigma", args.min_sigma), ("min_curve_line", args.min_curve_line),
                        ("min_selectivity", args.min_selectivity)) if v is not None)
        cmd = (f"circuits discover --model {args.checkpoint} --layer {fam.layer}{opts} "
               f"--images $CIRCUITS_DATA/imagenet-sample-1000 --freeze")
        print(f"wrote {freeze_family(d, args.checkpoint, cmd)}")
    return 0


# --------------------------------------------------------------------------- graph
def _add_graph(subparsers) -> None:
    p = subparsers.add_parser(
        "graph", help="build the circuit graph; write PNGs, an offline HTML page and GraphML",
        description="Unit-level circuit graph between consecutive --layers from expanded weights, its family-level "
        "view, a layered family-graph PNG, weight diagrams between curve families, an interactive offline HTML "
        "page, GraphML and node-link JSON.",
    )
    _add_checkpoint_arg(p)
    p.add_argument("--layers", default="conv2d2,mixed3a,mixed3b,mixed4a", help="comma-separated, forward order")
    p.add_argument("--out", required=True)
    p.add_argument("--threshold", type=float, default=0.5,
                   help="keep an edge when its L2 norm ≥ threshold × the strongest input of its destination unit")
    p.add_argument("--vis-steps", type=int, default=0, metavar="N",
                   help="feature-visualization thumbnails on the HTML page, N steps per family (default 0: none)")
    p.add_argument("--weights", default=None)
    p.add_argument("--overwrite", action="store_true")
    _add_device_arg(p)
    p.set_defaults(func=_cmd_graph)


def _cmd_graph(args: argparse.Namespace) -> int:
    from .graph_cmd import run_graph

    layers = [x.strip() for x in args.layers.split(",") if x.strip()]
    if args.vis_steps < 0:
        raise ValueError(f"--vis-steps must be ≥ 0; got {args.vis_steps}")
    s = run_graph(args.checkpoint, layers, args.out, args.threshold, args.weights, args.overwrite, str(_device(args)),
                  vis_steps=args.vis_steps)
    print(f"{s['nodes']} units, {s['edges']} edges, {s['families']} families ({s['build_seconds']} s to build); "
          f"wrote {args.out}")
    return 0


# --------------------------------------------------------------------------- edit
def _add_edit(subparsers) -> None:
    p = subparsers.add_parser(
        "edit", help="validate, apply or diff an edit plan (JSON/YAML)",
        description="Edit plans (edits.EditPlan) saved as .json/.yaml/.yml: check them against a checkpoint, "
        "apply them to a copy of the model and save the result, or list what they change.",
    )
    sub = p.add_subparsers(dest="edit_command", metavar="ACTION")

    q = sub.add_parser("validate", help="check a plan file (exit 2 and the error when invalid)",
                       description="Reads the plan (YAML with safe_load only) and checks every edit. With --model, "
                                   "also checks units, families and ranges against that checkpoint and rejects "
                                   "conflicting edits. No weights are loaded.")
    q.add_argument("plan", metavar="PLAN", help="plan file (.json, .yaml, .yml)")
    _add_checkpoint_arg(q, default=None)
    q.set_defaults(func=_cmd_edit_validate)

    q = sub.add_parser("apply", help="apply a plan to a copy of the model and save the edited model",
                       description="Writes the edited model with edits.save_model (reload with edits.load_model): "
                                   "weights, widened structure and, in the metadata, the applied plan (with measured "
                                   "means and resolved families). Activation interventions (resample ablation) are "
                                   "not weights: re-install them from the plan (EditPlan.install_interventions).")
    q.add_argument("plan", metavar="PLAN", help="plan file (.json, .yaml, .yml)")
    _add_checkpoint_arg(q)
    q.add_argument("--out", required=True, metavar="FILE", help="edited model (.safetensors)")
    q.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    q.add_argument("--save-plan", metavar="FILE", help="also write the applied plan (.json/.yaml) here")
    _add_edit_common(q)
    q.set_defaults(func=_cmd_edit_apply)

    q = sub.add_parser("diff", help="list the tensors a plan changes, with counts and the largest changes",
                       description="Applies the plan to a copy and compares state dicts: tensors changed, entries "
                                   "changed, the largest absolute changes per tensor, channels added by "
                                   "structural edits, and installed interventions.")
    q.add_argument("plan", metavar="PLAN", help="plan file (.json, .yaml, .yml)")
    _add_checkpoint_arg(q)
    q.add_argument("--top", type=int, default=3, help="largest changes listed per tensor (default 3)")
    q.add_argument("--json", action="store_true", help="print the diff as JSON")
    _add_edit_common(q)
    q.set_defaults(func=_cmd_edit_diff)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def _add_edit_common(q: argparse.ArgumentParser) -> None:
    q.add_argument("--weights", default=None, help="weights file (default: the user cache)")
    q.add_argument("--reference", metavar="DIR", default=None,
                   help="image folder for edits that measure statistics (Ablate mode 'mean' without stored means)")
    q.add_argument("--n-reference", type=int, default=100, metavar="N",
                   help="evenly spaced reference images to use (default 100)")
    _add_device_arg(q)


def _load_plan(path: str):
    from edits import EditPlan

    return EditPlan.load(Path(path).expanduser())


def _applied(args: argparse.Namespace):
    """(plan, model, edited, record) for ``edit apply`` / ``edit diff``."""
    from circuits import load_model

    plan = _load_plan(args.plan)
    plan.validate(args.checkpoint)  # before loading weights or images
    need = plan.needs_reference()
    if need and not args.reference:
        i, kind, field = need[0]
        raise ValueError(f"{args.plan}: edits[{i}] ({kind}) field {field!r} is measured on reference images: "
                         "pass --reference DIR (e.g. $CIRCUITS_DATA/imagenet-sample-1000)")
    model = load_model(args.checkpoint, weights=args.weights, device=_device(args))
    reference = None
    if need:
        from .discovery import load_reference_images

        reference = load_reference_images(args.reference, args.n_reference)
    edited, record = plan.apply(model, reference=reference)
    return plan, model, edited, record


def _cmd_edit_validate(args: argparse.Namespace) -> int:
    from edits import EditError

    try:
        plan = _load_plan(args.plan)
        if args.checkpoint:
            plan.validate(args.checkpoint)
        elif not len(plan):
            raise EditError("the plan has no edits; it would change nothing", field="edits")
    except EditError as e:
        _error(f"{args.plan}: {e}")
        return 2
    where = f"valid for {args.checkpoint}" if args.checkpoint else "document valid (add --model to check units)"
    print(f"OK {args.plan}: plan {plan.name!r}, {len(plan)} edit(s), {where}")
    for i, kind, field in plan.needs_reference():
        print(f"  note: edits[{i}] ({kind}) measures {field!r} on reference images when applied (--reference DIR)")
    return 0


def _cmd_edit_apply(args: argparse.Namespace) -> int:
    out = Path(args.out).expanduser()
    if out.suffix != ".safetensors":
        raise ValueError(f"--out {out}: the edited model is written as .safetensors")
    if out.exists() and not args.overwrite:
        raise ValueError(f"--out {out} exists; pass --overwrite to replace it")
    plan, _, edited, record = _applied(args)
    from edits import save_model

    path = save_model(edited, out)
    print(f"applied {args.plan} ({len(plan)} edit(s)) to {args.checkpoint}: {record.num_changed:,} weights changed "
          f"in {len(record.changed)} tensor(s), {len(record.interventions)} intervention(s)")
    for h in record.interventions:
        print(f"  intervention on {h.name}: {h.note} (not a weight: re-install with EditPlan.install_interventions)")
    print(f"wrote {path}")
    if args.save_plan:
        print(f"wrote {record.applied_plan.save(Path(args.save_plan).expanduser())} (the applied plan)")
    return 0


def _cmd_edit_diff(args: argparse.Namespace) -> int:
    import json

    from edits.diff import weight_diff

    if args.top < 0:
        raise ValueError(f"--top must be ≥ 0, got {args.top}")
    plan, model, edited, record = _applied(args)
    diffs = weight_diff(model, edited, top=args.top)
    if args.json:
        print(json.dumps({
            "plan": record.plan, "num_changed": record.num_changed, "tensors": [d.to_dict() for d in diffs],
            "interventions": [{"hook_point": h.name, "note": h.note} for h in record.interventions],
        }, indent=2))
        return 0
    print(f"plan {plan.name!r} on {args.checkpoint}: {len(plan)} edit(s); {len(diffs)} tensor(s) differ, "
          f"{sum(d.changed for d in diffs):,} entries changed; {len(record.interventions)} intervention(s)")
    for d in diffs:
        shape = "×".join(map(str, d.shape_after or d.shape_before or ()))
        if d.status in ("added", "removed"):
            print(f"{d.key}  ({shape})  {d.status} tensor, {d.numel:,} entries ({d.new_nonzero:,} non-zero)")
            continue
        print(f"{d.key}  ({shape})  changed {d.changed:,} / {d.numel:,}  max |Δ| {d.max_abs:.6g}")
        for dim, (a, b) in d.added.items():
            print(f"    added channels: dim {dim}: {a} → {b} (+{b - a})")
        if d.new_entries:
            print(f"    {d.new_entries:,} new entries, {d.new_nonzero:,} non-zero")
        for dim, (a, b) in d.removed.items():
            print(f"    removed channels: dim {dim}: {a} → {b}")
        for idx, before, after in d.top:
            print(f"    [{', '.join(map(str, idx))}]  {before:.6g} → {after:.6g}  (Δ {after - before:+.6g})")
    for h in record.interventions:
        print(f"intervention on {h.name}: {h.note}")
    return 0


# --------------------------------------------------------------------------- tune
def _add_tune(subparsers) -> None:
    p = subparsers.add_parser(
        "tune", help="tuning curves, joint tuning, combing, angles and dataset statistics of units",
        description="Measure units (3b:358, mixed3b:9,mixed3b:12) or families (mixed3b/curves, from the "
        "checkpoint's catalog) on synthetic curves, lines, combed curves and angles at their receptive-field "
        "centre, and write tables (CSV) and plots to --out (atomically). With --images: σ units (pre-ReLU "
        "statistics over reference images, all positions) and dataset statistics (activation histogram, "
        "exponential tail, top examples, rotation tuning); without it those are skipped.",
    )
    p.add_argument("targets", nargs="+", metavar="UNIT_OR_FAMILY", help="e.g. 3b:358 or mixed3b/curves")
    _add_checkpoint_arg(p)
    p.add_argument("--out", required=True, help="report folder (must be empty or absent unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument("--images", default=None, help="image folder for σ units and dataset statistics")
    p.add_argument("--orientation-step", type=float, default=5.0, metavar="DEG",
                   help="degrees between orientations (0.5 = the published 720 bins; default 5)")
    p.add_argument("--radii", type=float, nargs="+", default=None, metavar="PX",
                   help="curve radii in px (default 8 12 18 27 40 60 90 135 200)")
    p.add_argument("--n-radii", type=int, default=None, metavar="N",
                   help="instead of --radii: N radii geometrically spaced from 8 to 200 px")
    p.add_argument("--stroke-width", type=float, default=2.0, metavar="PX")
    p.add_argument("--top-k", type=int, default=8, help="top dataset examples per unit (default 8)")
    p.add_argument("--limit", type=int, default=None, help="dataset statistics over the first N images only")
    p.add_argument("--reference-images", type=int, default=100, help="images for the σ reference (default 100)")
    p.add_argument("--rotation-step", type=float, default=10.0, metavar="DEG", help="rotation tuning step")
    p.add_argument("--vis-steps", type=int, default=0, metavar="N",
                   help="also feature visualizations with N steps (featurevis.png, vis/; 512 is the usual; default 0: none)")
    p.add_argument("--weights", default=None, help="weights file (default: the user cache)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    _add_device_arg(p)
    p.set_defaults(func=_cmd_tune)


def _cmd_tune(args: argparse.Namespace) -> int:
    from circuits import load_model
    from circuits.spec import get_spec

    from . import stimuli as S
    from .report import check_out_dir
    from .tuning import parse_targets, tune_report

    # everything the user can get wrong is checked before the model is loaded
    try:
        units, labels = parse_targets(args.targets, get_spec(args.checkpoint))
    except IndexError as e:  # a unit index out of range: a user error like an unknown name
        raise ValueError(str(e)) from None
    if args.radii is not None and args.n_radii is not None:
        raise ValueError("give --radii or --n-radii, not both")
    radii = S.radius_grid(args.n_radii) if args.n_radii is not None else (args.radii or list(S.DEFAULT_RADII))
    S.curves(S.orientation_grid(args.orientation_step)[:1], radii, stroke_width=args.stroke_width)
    check_out_dir(args.out, args.overwrite)
    if args.images is not None:
        from .dataset import image_files

        image_files(args.images)
    model = load_model(args.checkpoint, weights=args.weights, device=_device(args))

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    s = tune_report(model, units, args.out, images=args.images, orientation_step=args.orientation_step, radii=radii,
                    stroke_width=args.stroke_width, top_k=args.top_k, limit=args.limit,
                    reference_images=args.reference_images, rotation_step=args.rotation_step,
                    overwrite=args.overwrite, log=log, labels=labels, vis_steps=args.vis_steps)
    for row in s["per_unit"]:
        line = (f"{row['unit']}: preferred {row['preferred_orientation']:.1f}°, width {row['tuning_width']:.0f}°, "
                f"echo {row['echo_ratio']:.2f}")
        if "curve_sigma" in row:
            line += (f", best curve {row['curve_sigma']:.1f}σ vs line {row['line_sigma']:.1f}σ "
                     f"(×{row['ratio_sigma']:.1f} above the mean)")
        else:
            line += f", best curve {row['best_curve']:.0f} vs line {row['best_line']:.0f} (pre-ReLU)"
        print(line)
    if "skipped" in s:
        print(s["skipped"])
    print(f"report: {args.out} ({', '.join(s['files'])}; {s['wall_time_s']} s)")
    return 0


# --------------------------------------------------------------------------- main
#: Subcommand registrars, in the order they appear in ``--help``.
def _add_vis(subparsers) -> None:
    from .vis_cmd import add_parser

    add_parser(subparsers)


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_study, _add_tune, _add_edit, _add_graph, _add_discover, _add_weights, _add_vis,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Circuit editing and ablation in InceptionV1 (BVLC GoogLeNet and Lucid's inception5h).",
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("--traceback", action="store_true", help="show Python tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 check failed, 2 usage/user error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors: argparse has printed already
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    import logging

    logging.basicConfig(level=logging.INFO, format=f"{PROG}: %(message)s")
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    from circuits.weights import WeightsError

    user_errors = (WeightsError, *USER_ERRORS, OSError)
    try:
        return int(func(args) or 0)
    except user_errors as e:
        if args.traceback:
            raise
        _error(_message(e))
        return 2
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
