"""``circuits weights``: import, verify, locate or download checkpoint weights."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from studies.cli.common import add_checkpoint_arg, checkpoint_arg, error, number


class VerifyFailed(Exception):
    """A ``weights verify`` check failed (exit status 1)."""


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

def add_parser(subparsers: argparse._SubParsersAction) -> None:
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
    add_checkpoint_arg(q)
    q.add_argument("--from", dest="source", metavar="PATH", help="caffejs bvlc_googlenet folder, or (inceptionv1) a .pth")
    q.add_argument("--weights", metavar="OUT", help="where to write the canonical file (default: the cache)")
    q.set_defaults(func=_cmd_weights_import)

    q = sub.add_parser("verify", help="check the canonical file (and the source files) against their digests",
                       description="Checks the canonical file's tensors against the digest stored at conversion "
                                   "and the checkpoint's shapes; with --from, also every source file's SHA-256 "
                                   "against the values pinned in the package. Exit 1 on any failure.")
    add_checkpoint_arg(q)
    q.add_argument("--weights", metavar="FILE", help="canonical .safetensors file (default: the cache)")
    q.add_argument("--from", dest="source", metavar="PATH", help="caffejs bvlc_googlenet folder, or (inceptionv1) a .pth")
    q.set_defaults(func=_cmd_weights_verify)

    q = sub.add_parser("where", help="show the cache folder and the canonical files")
    add_checkpoint_arg(q, default=None)
    q.set_defaults(func=_cmd_weights_where)

    q = sub.add_parser("fetch", help="download the public BVLC files (needs internet), verify and import them")
    q.add_argument("checkpoint", type=checkpoint_arg, metavar="CHECKPOINT", help="inceptionv1_caffe")
    q.add_argument("--dest", metavar="DIR", help="folder for the downloaded files (default: <cache>/bvlc_googlenet)")
    q.add_argument("--timeout", type=number(float, 0.1, 3600.0, " s"), default=20.0, metavar="S", help="seconds per request (default 20)")
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
        error(str(e))
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
        error(str(e))
        return 2
    print(f"wrote {path}")
    meta = _canonical_meta(path)
    if "digest" in meta:
        print(f"digest {meta['digest']}")
    return 0
