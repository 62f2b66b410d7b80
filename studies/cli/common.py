"""Shared pieces of the command-line groups: the program name, user errors, the
``--checkpoint``/``--device``/executor options and how they are read."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable

PROG = "circuits"

#: Exceptions from the library that mean "the user has to fix something": printed as one
#: line, exit status 2. (``WeightsError`` is added lazily to keep ``--help`` fast.)
USER_ERRORS: tuple[type[BaseException], ...] = (KeyError, FileNotFoundError, ValueError)


def version() -> str:
    from circuits import __version__

    return f"{PROG} {__version__}"


def message(e: BaseException) -> str:
    """The human message of an exception (``KeyError`` would otherwise print its repr)."""
    if isinstance(e, KeyError) and len(e.args) == 1 and isinstance(e.args[0], str):
        return e.args[0]
    if isinstance(e, OSError) and e.filename and str(e.filename) not in str(e):
        return f"{e.strerror or e}: {e.filename}"
    return str(e) or type(e).__name__


def error(msg: str) -> None:
    print(f"{PROG}: error: {msg}", file=sys.stderr)


def checkpoint_arg(value: str) -> str:
    """argparse ``type=``: a checkpoint name or alias → its canonical name."""
    from circuits.spec import get_spec

    try:
        return get_spec(value).name
    except KeyError as e:
        raise argparse.ArgumentTypeError(message(e)) from None


def number(kind: type = float, lo: float | None = None, hi: float | None = None,
           unit: str = "") -> Callable[[str], float | int]:
    """argparse ``type=``: a finite ``kind`` (``int`` or ``float``) in ``[lo, hi]``; anything else is
    a usage error (``circuits <command>: error: argument --x: …``, exit 2) before any compute.

    The bounds of each option are its scientific or practical range (e.g. orientations 0.1–180°:
    3,600 orientations at most; radii 0.5–1,000 px, a few times the 224 px input).
    """
    noun = "whole number" if kind is int else "number"

    def shown(v: float) -> str:  # whole numbers in full (9223372036854775807, not 9.22337e+18)
        return f"{int(v)}" if kind is int else f"{v:g}"

    where = (f" between {shown(lo)} and {shown(hi)}" if lo is not None and hi is not None
             else f" ≥ {shown(lo)}" if lo is not None else f" ≤ {shown(hi)}" if hi is not None else "")

    def parse(text: str) -> float | int:
        try:
            v = kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a {noun}") from None
        if kind is float and not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"{text[:40]} is out of range: give a {noun}{where}{unit}")
        return v

    parse.__name__ = noun  # argparse names the type in its messages
    return parse


def name_list(text: str) -> list[str]:
    """argparse ``type=``: a comma-separated list of at least one non-empty name."""
    items = [x.strip() for x in text.split(",")]
    if not text.strip() or not all(items):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of names (an empty item)")
    return items


# Shared option types (one definition per kind of value; ranges in each option's help).
DEGREES = number(float, 0.1, 180.0, " degrees")  #: orientation/rotation steps
PIXELS = number(float, 0.5, 1000.0, " px")  #: radii and stroke widths
COUNT = number(int, 1, 10**9)  #: a number of images, units, examples …
BATCH = number(int, 1, 65_536)  #: batch sizes
JOBS = number(int, 1, 256)  #: worker processes
SEED = number(int, 0, 2**63 - 1)
RETRIES = number(int, 0, 100)


def add_checkpoint_arg(p: argparse.ArgumentParser, default: str | None = "inceptionv1_caffe") -> None:
    p.add_argument(
        "--checkpoint", "--model", dest="checkpoint", type=checkpoint_arg, default=default, metavar="NAME",
        help="inceptionv1_caffe (BVLC GoogLeNet) or inceptionv1 (Lucid's inception5h)"
        + (f"; default {default}" if default else ""),
    )


def add_out_args(p: argparse.ArgumentParser, help: str = "report folder (must be empty or absent unless --overwrite)",
                 metavar: str | None = None, replaces: str = "a non-empty --out") -> None:
    """Add the required ``--out`` and ``--overwrite`` (checked by
    :func:`studies.report.folder.check_out_dir` before any compute)."""
    p.add_argument("--out", required=True, metavar=metavar, help=help)
    p.add_argument("--overwrite", action="store_true", help=f"replace {replaces}")


def add_weights_arg(p: argparse.ArgumentParser, help: str = "weights file (default: the user cache)") -> None:
    """Add ``--weights`` (a weights file for ``load_model``; default the verified file in the user cache)."""
    p.add_argument("--weights", default=None, metavar="FILE", help=help)


def add_seed_arg(p: argparse.ArgumentParser, controls: str, default: int = 0) -> None:
    """Add ``--seed`` (a whole number 0 … 2⁶³−1); ``controls`` says what it seeds, for the help."""
    p.add_argument("--seed", type=SEED, default=default, metavar="N", help=f"seed of {controls} (default {default})")


def add_quiet_arg(p: argparse.ArgumentParser) -> None:
    """Add ``--quiet``."""
    p.add_argument("--quiet", action="store_true", help="no progress output (warnings are still printed)")


def layer_arg(option: str, name: str, checkpoint: str) -> str:
    """The canonical Lucid name of layer ``name`` given to ``option`` (``3b`` → ``mixed3b``).

    Raises:
        KeyError: an unknown layer; the message starts with ``option`` and lists the valid layers.
    """
    from circuits.spec import get_spec
    from circuits.units import canonical_layer

    try:
        return canonical_layer(name, get_spec(checkpoint))
    except KeyError as e:
        raise KeyError(f"{option}: {message(e)}") from None


def add_device_arg(p: argparse.ArgumentParser) -> None:
    """Add ``--device`` (read it with :func:`_device`)."""
    p.add_argument("--device", default=None, help="cpu (default), cuda, cuda:N, mps or auto")


def add_executor_args(p: argparse.ArgumentParser) -> None:
    """Add ``--executor/--address/--gpus-per-task/--cpus-per-task/--max-retries`` (read them
    with :func:`_executor_settings`)."""
    g = p.add_argument_group("where the sweep's tasks run (studies.run.executors)")
    g.add_argument("--executor", default="local", choices=["local", "ray"],
                   help="local (this machine; default) or ray (a Ray cluster; needs pip install -e '.[ray]')")
    g.add_argument("--address", default=None, metavar="auto|HOST:PORT",
                   help="Ray cluster to join (default: start a local Ray instance)")
    g.add_argument("--gpus-per-task", type=number(float, 0, 1024), default=0, metavar="N", help="GPUs per Ray task (default 0)")
    g.add_argument("--cpus-per-task", type=number(int, 1, 1024), default=1, metavar="N",
                   help="CPUs (torch threads) per Ray task (default 1)")
    g.add_argument("--max-retries", type=RETRIES, default=2, metavar="N",
                   help="retries of a task that fails or whose worker dies (default 2)")


def add_study_run_args(p: argparse.ArgumentParser) -> None:
    """The options every study shares at the end of its list: ``--quiet``, ``--device`` and the
    executor (:func:`add_executor_args`)."""
    add_quiet_arg(p)
    add_device_arg(p)
    add_executor_args(p)


def executor_settings(args: argparse.Namespace) -> dict:
    """The executor options as a dict for a study config (checked by building the executor
    once, so a missing Ray or a bad setting fails before any compute)."""
    from studies.run.executors import make_executor

    settings = {"name": args.executor, "max_retries": args.max_retries}
    ray_only = {"address": args.address, "gpus_per_task": args.gpus_per_task}
    if args.executor == "ray":
        settings.update(ray_only, cpus_per_task=args.cpus_per_task)
    try:  # refuses ray-only options for local; Ray missing → the install hint, exit 2
        make_executor(**{**ray_only, **settings}, jobs=getattr(args, "jobs", 1) or 1)
    except ImportError as e:
        raise ValueError(f"--executor ray: {e}") from None
    return settings


def device(args: argparse.Namespace):
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
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {name!r} is not a device; use cpu, cuda, cuda:N, mps or auto") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {name}: MPS is not available on this machine; use --device cpu")
    return dev


#: help of options that their group module left without one (by option string)
GENERIC_HELP = {
    "--batch-size": "images per forward pass",
    "--families": "comma-separated families to ablate (catalog keys LAYER/NAME)",
    "--modes": "comma-separated ablation modes: zero, mean, resample",
    "--limit": "use only the first N images (sorted order)",
    "--stroke-width": "curve stroke width in px",
    "--layer": "layer to search (Lucid name, e.g. mixed3b)",
}


def document_defaults(parser: argparse.ArgumentParser) -> None:
    """Give every option of ``parser`` and its sub-commands a help text, ending with its default
    when the text does not already state one (``--help`` shows every default)."""
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for sub in dict.fromkeys(a.choices.values()):
                document_defaults(sub)
            continue
        if not a.option_strings or a.help == argparse.SUPPRESS or isinstance(
                a, (argparse._HelpAction, argparse._VersionAction)):
            continue
        if not a.help:
            a.help = next((GENERIC_HELP[o] for o in a.option_strings if o in GENERIC_HELP), "")
        d = a.default
        if d is None or d is False or d is argparse.SUPPRESS or d == [] or isinstance(
                a, (argparse._StoreTrueAction, argparse._StoreFalseAction)):  # a flag: its help says what it does
            continue
        if "default" not in (a.help or ""):
            shown = " ".join(map(str, d)) if isinstance(d, (list, tuple)) else d
            a.help = f"{a.help} (default: {shown})".strip().replace("%", "%%")
