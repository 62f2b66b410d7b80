"""``circuits explore``: the circuit explorer in the browser (serve), ``--build LAYER`` (precompute a
layer's pages) and ``--export DIR --layer L`` (a static site) — :mod:`studies.explore`."""

from __future__ import annotations

import argparse
import sys

from studies.cli.common import COUNT, DEGREES, add_checkpoint_arg, add_device_arg, add_seed_arg, number

PORT = number(int, 0, 65535)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "explore", help="the circuit explorer: units, families, the circuit graph and edits in the browser",
        description="Serve a local web app (FastAPI + uvicorn; 127.0.0.1 unless --host) with every layer's units "
        "(family colours), unit pages (feature visualization, dataset examples with --images, radial and joint "
        "tuning, preferred orientation, expanded-weight neighbours), family pages, the circuit graph and an edit "
        "panel (validate, apply, tuning and accuracy before/after, downloads). Everything computed is cached on "
        "disk (--cache). --build LAYER precomputes a layer and exits; --export DIR --layer L writes a static site.",
    )
    add_checkpoint_arg(p)
    p.add_argument("--weights", default=None, help="weights file (default: the user cache; an edited model works)")
    p.add_argument("--images", default=None, metavar="DIR",
                   help="image folder: dataset examples, σ units, top-1/top-5 in the edit panel (default: none)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=PORT, default=8000, help="TCP port; 0 picks a free one (default 8000)")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="cache folder (default $CIRCUITS_CACHE/explore or ~/.cache/circuits/explore)")
    add_seed_arg(p, "the feature visualizations and the range-example sampling")
    p.add_argument("--vis-steps", type=number(int, 1, 100_000), default=256, metavar="N",
                   help="feature-visualization steps (512 = Lucid's default; default 256)")
    p.add_argument("--orientation-step", type=DEGREES, default=5.0, metavar="DEG",
                   help="degrees between tuning orientations (default 5)")
    p.add_argument("--dataset-limit", type=COUNT, default=None, metavar="N",
                   help="dataset examples from the first N images only (default: all)")
    p.add_argument("--build", default=None, metavar="LAYER", help="precompute LAYER's unit pages and exit")
    p.add_argument("--what", nargs="+", default=None, choices=["pages", "featurevis", "dataset"],
                   help="what --build computes (default: pages featurevis, and dataset with --images)")
    p.add_argument("--export", default=None, metavar="DIR", help="write a static site of --layer into DIR and exit")
    p.add_argument("--layer", default=None, help="the layer of --export (e.g. mixed3b)")
    p.add_argument("--units", nargs="+", default=None, metavar="UNIT",
                   help="--build/--export only these units of the layer (e.g. 3b:379 3b:358)")
    p.add_argument("--overwrite", action="store_true", help="--export: replace an earlier export")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_arg(p)
    p.set_defaults(func=_cmd_explore)


def _config(args: argparse.Namespace):
    from studies.cli.common import device
    from studies.explore.config import ExploreConfig, default_cache

    return ExploreConfig(checkpoint=args.checkpoint, weights=args.weights, images=args.images,
                         cache=args.cache or default_cache(), host=args.host, port=args.port, seed=args.seed,
                         vis_steps=args.vis_steps, orientation_step=args.orientation_step,
                         dataset_limit=args.dataset_limit, device=str(device(args))).check()


def _layer_units(args: argparse.Namespace, layer_arg: str, spec) -> tuple[str, list | None]:
    """Canonical layer (one with pages) and the ``--units`` of it, checked before the model loads."""
    from circuits.units import canonical_layer, resolve_units
    from studies.explore.context import LAYERS
    from studies.explore.jobs import message

    try:
        layer = canonical_layer(layer_arg)
    except KeyError:
        layer = None
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer_arg!r}; valid layers: {', '.join(LAYERS)}")
    units = None
    if args.units:
        try:  # the one parser: unit ids and family keys, range-checked (the message names the valid range)
            units = resolve_units(args.units, spec, unique=True)
        except (IndexError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"--units: {message(e)}") from None
        if any(u.layer != layer for u in units):
            raise ValueError(f"--units must be units of {layer}; got {', '.join(args.units)}")
    return layer, units


def _check(args: argparse.Namespace):
    """Every option combination, before any compute: ``(mode, layer, units)``."""
    from circuits.spec import get_spec

    spec = get_spec(args.checkpoint)
    if args.build and args.export:
        raise ValueError("give --build LAYER or --export DIR, not both")
    if args.export and not args.layer:
        raise ValueError("--export DIR needs --layer LAYER (e.g. --layer mixed3b)")
    if args.layer and not args.export:
        raise ValueError("--layer goes with --export DIR (for --build give the layer itself: --build mixed3b)")
    if args.units and not (args.build or args.export):
        raise ValueError("--units goes with --build or --export")
    if args.what and not args.build:
        raise ValueError("--what goes with --build LAYER")
    if args.build:
        return ("build", *_layer_units(args, args.build, spec))
    if args.export:
        from studies.explore.config import default_cache
        from studies.explore.export import check_export_dir

        check_export_dir(args.export, args.overwrite, args.cache or default_cache(), lock=False)
        return ("export", *_layer_units(args, args.layer, spec))
    return "serve", None, None


def _cmd_explore(args: argparse.Namespace) -> int:
    from studies.explore.config import check_cache

    mode, layer, units = _check(args)
    config = _config(args)
    check_cache(config.cache)  # before the model loads
    if mode == "build":
        return _build(config, layer, units, args)
    sock = _listen(config) if mode == "serve" else None  # a port in use: said before the model loads
    from studies.explore.server import create_app

    try:
        app = create_app(config)
    except BaseException:
        if sock is not None:
            sock.close()
        raise
    if mode == "export":
        from pathlib import Path

        from studies.explore.export import export_site

        out = export_site(app, layer, Path(args.export), units=[u.short for u in units] if units else None,
                          overwrite=args.overwrite, progress=not args.quiet)
        print(f"circuits explore: wrote {out} (open {out / 'index.html'})")
        return 0
    return _serve(app, config, sock)


def _build(config, layer: str, units, args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from circuits.units import Unit
    from studies.explore.builds import build
    from studies.explore.context import Explorer

    ex = Explorer(config)
    us = units or [Unit(layer, i) for i in range(ex.spec.layer_width(layer))]
    what = args.what or (["pages", "featurevis"] + (["dataset"] if config.images else []))
    if "dataset" in what and config.images is None:
        raise ValueError("--what dataset needs --images DIR")
    bar = tqdm(total=1000, desc=f"build {layer}", unit="‰", disable=args.quiet or None, file=sys.stderr)

    def report(progress=None, message=None):
        if progress is not None:
            bar.update(max(0, int(progress * 1000) - bar.n))
        if message:
            bar.set_postfix_str(message[:60], refresh=False)

    res = build(ex, us, what, report)
    bar.update(1000 - bar.n)
    bar.close()
    print(f"circuits explore: built {layer}: {res['units']} unit(s), {', '.join(res['built'])}; cache {config.cache}")
    return 0


def _listen(config):
    """A listening socket on ``config.host:config.port``.

    Raises:
        ValueError: the port is in use or the address cannot be bound (names the port; suggests ``--port 0``)."""
    import socket

    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((config.host, config.port))
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise ValueError(f"cannot listen on {config.host} port {config.port} ({e.strerror or e}): give another "
                         "--port, or --port 0 for a free one") from None
    return sock


def serve_lines(host: str, port: int) -> tuple[str, str | None]:
    """``(url, warning)`` printed when the server starts: a URL a browser on this machine can open (a
    wildcard bind, ``0.0.0.0`` / ``::``, is reached at the loopback address), and a warning when ``host`` is
    not a loopback address: every route, the edit and build ones included, is then reachable from the network."""
    import ipaddress

    name = host.strip("[]")
    try:
        ip = ipaddress.ip_address(name)
        loopback, wildcard = ip.is_loopback, ip.is_unspecified
    except ValueError:
        loopback, wildcard = name.lower() == "localhost", False
    shown = ("[::1]" if ":" in name else "127.0.0.1") if wildcard else f"[{name}]" if ":" in name else name
    warning = None if loopback else (
        f"circuits: warning: --host {host}: the explorer is reachable from the network, its edit and build "
        "routes (which run computations and write the cache) included; anyone who can reach this machine "
        "can use them (the default --host 127.0.0.1 keeps it on this machine)")
    return f"http://{shown}:{port}/", warning


def _serve(app, config, sock) -> int:
    import uvicorn

    port = sock.getsockname()[1]
    config.port = port  # the Host check of studies.explore.server.SameOrigin
    url, warning = serve_lines(config.host, port)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    print(f"circuits explore: serving {url}", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():  # Ctrl-C is KeyboardInterrupt even where the
        signal.signal(signal.SIGINT, signal.default_int_handler)  # parent ignored SIGINT (a background job)
    try:
        server.run(sockets=[sock])  # Ctrl-C / SIGTERM: uvicorn shuts down, then raises the signal again
    finally:
        sock.close()
        _stop_jobs(app)
    return 0


def _stop_jobs(app, timeout: float = 10.0) -> None:
    """Stop the job worker before the interpreter exits (a torch computation on a thread that is still
    running at exit aborts the process: "terminate called without an active exception"). A job that
    does not reach its next progress report within ``timeout`` s: the process ends at once, with the
    status of the signal (130 Ctrl-C, 143 SIGTERM) and one line."""
    import os

    if app.state.explorer.jobs.stop(timeout):
        return
    e = sys.exc_info()[1]
    code = 130 if isinstance(e, KeyboardInterrupt) else e.code if isinstance(e, SystemExit) else 0
    if isinstance(e, KeyboardInterrupt):
        print("circuits: error: interrupted", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 1)
