"""The ``circuits`` command line.

Usage::

    circuits --version
    circuits weights where
    circuits weights import [--checkpoint inceptionv1_caffe|inceptionv1] [--from PATH] [--weights OUT]
    circuits weights verify [--checkpoint ...] [--weights FILE] [--from PATH]
    circuits weights fetch CHECKPOINT [--dest DIR] [--timeout S]
    circuits study curve-ablation|family-ablation|echo|combing|sweep --model M [--images DIR] --out DIR [--overwrite]
    circuits discover --model M --layer L --images DIR [--freeze]
    circuits tune UNIT|FAMILY ... --model M --out DIR [--images DIR] [--orientation-step DEG] [--radii PX ...]
    circuits edit validate PLAN [--model M]
    circuits edit apply PLAN --model M --out FILE [--reference DIR]
    circuits edit diff PLAN --model M [--reference DIR] [--json]
    circuits graph --model M --out DIR
    circuits explore --model M [--images DIR] [--port P] [--build LAYER] [--export DIR --layer L]
    circuits replay DIR/config.yaml --out NEW_DIR

One module per command group (``studies/cli/<group>.py``). Adding a group: write
``studies/cli/<group>.py`` with ``add_parser(subparsers)`` (creates its parser and calls
``set_defaults(func=...)`` with a function ``(args) -> int``), and add its name to
:data:`COMMANDS` below — one line. Shared options (``--checkpoint``, ``--device``, the
executor) and their readers are in :mod:`studies.cli.common`.

Errors the user can fix (a missing or corrupt weights file, an unknown name, a bad value)
are printed as ``circuits: error: <message>`` on stderr with exit status 2, without a
traceback (``--traceback`` shows it). ``weights verify`` exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from studies.cli.common import PROG, USER_ERRORS, device, document_defaults, error, message, version

#: Command groups (modules ``studies.cli.<name>``), in the order they appear in ``--help``;
#: each module has ``add_parser(subparsers)``.
COMMANDS = ("study", "tune", "vis", "dataset", "edit", "graph", "discover", "explore", "weights", "applications", "replay")

__all__ = ["COMMANDS", "PROG", "build_parser", "device", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Circuit editing and ablation in InceptionV1 (BVLC GoogLeNet and Lucid's inception5h).",
    )
    parser.add_argument("--version", action="version", version=version())
    parser.add_argument("--traceback", action="store_true", help="show Python tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    document_defaults(parser)
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
    previous = _exit_on_sigterm()
    try:
        return int(func(args) or 0)
    except user_errors as e:
        if args.traceback:
            raise
        error(message(e))
        return 2
    except KeyboardInterrupt:
        error("interrupted")
        return 130
    finally:
        if previous is not None:
            import signal

            signal.signal(signal.SIGTERM, previous)
        folder = sys.modules.get("studies.report.folder")
        if folder is not None:  # --out locks of a command that stopped before writing its report
            folder.release_all()


def _exit_on_sigterm():
    """SIGTERM ends the command like Ctrl-C does (temporary folders removed, workers stopped),
    with exit status 143 (128 + 15) and one line on stderr."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):  # noqa: ANN001 - signal handler signature
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        error("terminated (SIGTERM)")
        raise SystemExit(143)

    return signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":
    sys.exit(main())
