"""``circuits graph``: the circuit graph as PNGs, an offline HTML page and GraphML."""

from __future__ import annotations

import argparse

from studies.cli.common import (
    add_checkpoint_arg,
    add_device_arg,
    add_out_args,
    add_weights_arg,
    device,
    layer_arg,
    name_list,
    number,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "graph", help="build the circuit graph; write PNGs, an offline HTML page and GraphML",
        description="Unit-level circuit graph between consecutive --layers from expanded weights, its family-level "
        "view, a layered family-graph PNG, weight diagrams between curve families, an interactive offline HTML "
        "page, GraphML and node-link JSON.",
    )
    add_checkpoint_arg(p)
    p.add_argument("--layers", type=name_list, default="conv2d2,mixed3a,mixed3b,mixed4a", help="comma-separated, forward order")
    add_out_args(p)
    p.add_argument("--threshold", type=number(float, 0.0, 1.0), default=0.5,
                   help="keep an edge when its L2 norm ≥ threshold × the strongest input of its destination unit")
    p.add_argument("--vis-steps", type=number(int, 0, 100_000), default=0, metavar="N",
                   help="feature-visualization thumbnails on the HTML page, N steps per family (default 0: none)")
    add_weights_arg(p)
    add_device_arg(p)
    p.set_defaults(func=_cmd_graph)


def _cmd_graph(args: argparse.Namespace) -> int:
    from studies.graph import run_graph

    layers = [layer_arg("--layers", name, args.checkpoint) for name in args.layers]
    s = run_graph(args.checkpoint, layers, args.out, args.threshold, args.weights, args.overwrite, str(device(args)),
                  vis_steps=args.vis_steps)
    print(f"{s['nodes']} units, {s['edges']} edges, {s['families']} families ({s['build_seconds']} s to build); "
          f"wrote {args.out}")
    return 0
