"""The naming table of InceptionV1: every name of every layer and convolution, derived from one place.

One convolution has three names: its activation (hook point) ``mixed3b_5x5`` (Lucid's graph;
Olah et al., Distill 2020), its module path ``mixed3b.b5x5.conv`` (state-dict keys
``mixed3b.b5x5.conv.weight``), and its width field ``c5x5`` of
:class:`circuits.spec.BlockSpec`. :data:`CONVS` holds, per convolution suffix, the attribute
and the field; the functions below build and parse the joined names, so nothing else in the
package joins or splits them by hand.

>>> hook_name("mixed3b", "5x5"), hook_name("mixed3b", "5x5", pre_relu=True)
('mixed3b_5x5', 'mixed3b_5x5_pre_relu')
>>> module_path("mixed3b", "5x5"), CONVS["5x5"].field
('mixed3b.b5x5.conv', 'c5x5')
>>> split_hook_name("mixed3b_5x5_bottleneck_pre_relu")
('mixed3b', '5x5_bottleneck', True)
"""

from __future__ import annotations

from dataclasses import dataclass

#: Canonical (Lucid) layer names, in forward order.
CONV_LAYERS = ("conv2d0", "conv2d1", "conv2d2")
MIXED_LAYERS = (
    "mixed3a", "mixed3b", "mixed4a", "mixed4b", "mixed4c",
    "mixed4d", "mixed4e", "mixed5a", "mixed5b",
)
LAYERS = CONV_LAYERS + MIXED_LAYERS

#: Suffix of a pre-ReLU activation (``mixed3b_pre_relu``, ``mixed3b_5x5_pre_relu``).
PRE_RELU = "_pre_relu"


@dataclass(frozen=True)
class ConvName:
    """The names of one convolution of an inception block.

    Attributes:
        suffix: activation suffix, ``"5x5"`` (hook point ``mixed3b_5x5``).
        attr: :class:`~circuits.model.InceptionBlock` attribute, ``"b5x5"`` (module path
            ``mixed3b.b5x5.conv``).
        field: :class:`~circuits.spec.BlockSpec` width field, ``"c5x5"``.
        kernel: spatial kernel size (1, 3 or 5).
        branch: the branch it belongs to (``"5x5"`` for ``5x5_bottleneck`` too).
    """

    suffix: str
    attr: str
    field: str
    kernel: int
    branch: str


#: Every block convolution, in module (and state-dict) order.
CONVS: dict[str, ConvName] = {c.suffix: c for c in (
    ConvName("1x1", "b1x1", "c1x1", 1, "1x1"),
    ConvName("3x3_bottleneck", "b3x3_bottleneck", "c3x3_bottleneck", 1, "3x3"),
    ConvName("3x3", "b3x3", "c3x3", 3, "3x3"),
    ConvName("5x5_bottleneck", "b5x5_bottleneck", "c5x5_bottleneck", 1, "5x5"),
    ConvName("5x5", "b5x5", "c5x5", 5, "5x5"),
    ConvName("pool_reduce", "bpool_reduce", "pool_reduce", 1, "pool_reduce"),
)}
_BY_ATTR = {c.attr: c for c in CONVS.values()}

#: Branch suffixes of an inception block, in concatenation order, and the convolutions
#: each one contains (the last one writes the branch's slice of the block's output).
BRANCHES = ("1x1", "3x3", "5x5", "pool_reduce")
BRANCH_CONVS: dict[str, tuple[str, ...]] = {
    b: tuple(c.suffix for c in CONVS.values() if c.branch == b) for b in BRANCHES
}
CONV_KERNEL: dict[str, int] = {c.suffix: c.kernel for c in CONVS.values()}
#: Spatial extent (px of the block input) of each convolution's output: the bottlenecks and the
#: 1x1 read one position, the 3x3/5x5 convolutions their kernel of bottleneck outputs, and
#: pool_reduce a 3x3 max-pool of the input.
INPUT_EXTENT: dict[str, int] = {"1x1": 1, "3x3_bottleneck": 1, "3x3": 3, "5x5_bottleneck": 1, "5x5": 5,
                                "pool_reduce": 3}
#: Branches with a 1x1 bottleneck before their spatial convolution.
BOTTLENECK_BRANCHES = ("3x3", "5x5")


def conv_name(conv: str) -> ConvName:
    """The :class:`ConvName` of a convolution suffix.

    Raises:
        KeyError: not a block convolution; lists the valid suffixes.
    """
    try:
        return CONVS[conv]
    except (KeyError, TypeError):
        raise KeyError(f"{conv!r} is not a block convolution; valid: {', '.join(CONVS)}") from None


def output_conv(branch: str) -> str:
    """The convolution that writes ``branch``'s slice of the block output (``"5x5"`` → ``"5x5"``)."""
    return BRANCH_CONVS[branch][-1]


def bottleneck(branch: str) -> str:
    """The bottleneck convolution of a 3x3/5x5 branch (``"5x5"`` → ``"5x5_bottleneck"``)."""
    if branch not in BOTTLENECK_BRANCHES:
        raise KeyError(f"{branch!r} has no bottleneck; valid: {', '.join(BOTTLENECK_BRANCHES)}")
    return BRANCH_CONVS[branch][0]


def hook_name(layer: str, conv: str | None = None, pre_relu: bool = False) -> str:
    """Activation (hook point) name: ``mixed3b``, ``mixed3b_5x5``, ``mixed3b_5x5_pre_relu``, ``conv2d2_pre_relu``."""
    name = layer if conv is None else f"{layer}_{conv_name(conv).suffix}"
    return name + PRE_RELU if pre_relu else name


def pool_name(layer: str) -> str:
    """The hook point of a block's 3x3/1 max-pool (the pool branch's input): ``mixed3b_pool``."""
    return f"{layer}_pool"


def pre_relu_name(name: str) -> str:
    """``mixed3b_5x5`` → ``mixed3b_5x5_pre_relu`` (the activation before the ReLU)."""
    return name + PRE_RELU


def split_hook_name(name: str) -> tuple[str, str | None, bool] | None:
    """``(layer, conv or None, pre_relu)`` of a layer or block-convolution activation name
    (``"mixed3b_5x5_pre_relu"`` → ``("mixed3b", "5x5", True)``); ``None`` for any other name
    (pools, ``logits``, unknown)."""
    pre = name.endswith(PRE_RELU)
    base = name[:-len(PRE_RELU)] if pre else name
    if base in LAYERS:
        return base, None, pre
    for layer in MIXED_LAYERS:
        if base.startswith(layer + "_") and base[len(layer) + 1:] in CONVS:
            return layer, base[len(layer) + 1:], pre
    return None


def split_conv_activation(name: str) -> tuple[str, str] | None:
    """``"mixed3b_5x5"`` → ``("mixed3b", "5x5")``; ``None`` for anything that is not a block
    convolution's (post-ReLU) activation name."""
    parts = split_hook_name(name)
    if parts is None or parts[1] is None or parts[2]:
        return None
    return parts[0], parts[1]


def module_path(layer: str, conv: str | None = None) -> str:
    """Module path of a convolution: ``mixed3b.b5x5.conv``; ``conv2d2.conv`` for a conv layer."""
    if conv is None:
        if layer not in CONV_LAYERS:
            raise KeyError(f"{layer!r} is not a convolution layer; valid: {', '.join(CONV_LAYERS)}")
        return f"{layer}.conv"
    return f"{layer}.{conv_name(conv).attr}.conv"


def param_key(layer: str, conv: str | None = None, what: str = "weight") -> str:
    """State-dict key of a convolution parameter: ``mixed3b.b5x5.conv.weight``."""
    return f"{module_path(layer, conv)}.{what}"


def linear_path_path(layer: str, branch: str) -> str:
    """Module path of a block's linear path (:class:`circuits.model.LinearPath`): ``mixed3b.linear_paths.5x5.conv``."""
    return f"{layer}.linear_paths.{branch}.conv"


def split_linear_path_path(path: str) -> tuple[str, str] | None:
    """``"mixed3b.linear_paths.5x5.conv"`` → ``("mixed3b", "5x5")``; ``None`` for any other path
    (the branch is not checked: any name between ``linear_paths.`` and ``.conv``)."""
    parts = path.split(".")
    if len(parts) == 4 and parts[0] in MIXED_LAYERS and parts[1] == "linear_paths" and parts[3] == "conv":
        return parts[0], parts[2]
    return None


def split_module_path(path: str) -> tuple[str, str] | None:
    """``"mixed3b.b5x5.conv"`` → ``("mixed3b", "5x5")``; ``None`` for any other path."""
    parts = path.split(".")
    if len(parts) == 3 and parts[0] in MIXED_LAYERS and parts[1] in _BY_ATTR and parts[2] == "conv":
        return parts[0], _BY_ATTR[parts[1]].suffix
    return None


__all__ = [
    "BOTTLENECK_BRANCHES", "BRANCHES", "BRANCH_CONVS", "CONVS", "CONV_KERNEL", "CONV_LAYERS", "ConvName",
    "INPUT_EXTENT", "LAYERS", "MIXED_LAYERS", "PRE_RELU", "bottleneck", "conv_name", "hook_name", "linear_path_path",
    "module_path", "output_conv", "param_key", "pool_name", "pre_relu_name", "split_conv_activation",
    "split_hook_name", "split_linear_path_path", "split_module_path",
]
