"""Facts about the two InceptionV1 checkpoints, as data.

A :class:`ModelSpec` holds everything that differs between Lucid's ``inceptionv1``
(inception5h, the checkpoint of every Distill Circuits article) and the BVLC GoogLeNet
``inceptionv1_caffe``: branch widths, padding and pooling rules, the LRN constants, the
input preprocessing and the class list. One :class:`circuits.model.InceptionV1` is built
from either spec.

Sources: Szegedy et al. 2014 (GoogLeNet table 1); BVLC ``deploy.prototxt``; the public
PyTorch ports of inception5h (lucent's ``InceptionV1.py``, captum's ``inception_v1.py``),
read for facts; ``shared/docs/science.md`` §1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The layer and convolution names live in the naming table (re-exported here).
from .names import (  # noqa: E402
    BRANCH_CONVS,
    BRANCHES,
    CONV_KERNEL,
    CONV_LAYERS,
    CONVS,
    LAYERS,
    MIXED_LAYERS,
    split_conv_activation,
)

__all__ = [
    "BRANCHES", "BRANCH_CONVS", "BlockSpec", "CONV_KERNEL", "CONV_LAYERS", "INCEPTIONV1", "INCEPTIONV1_CAFFE", "LAYERS",
    "MIXED_LAYERS", "ModelSpec", "SPECS", "get_spec",
]


@dataclass(frozen=True)
class BlockSpec:
    """Widths of one inception block: ``(c1x1, c3x3_bottleneck, c3x3, c5x5_bottleneck, c5x5, pool_reduce)``."""

    name: str
    c1x1: int
    c3x3_bottleneck: int
    c3x3: int
    c5x5_bottleneck: int
    c5x5: int
    pool_reduce: int

    @property
    def out_channels(self) -> int:
        return self.c1x1 + self.c3x3 + self.c5x5 + self.pool_reduce

    def branch_widths(self) -> dict[str, int]:
        return {"1x1": self.c1x1, "3x3": self.c3x3, "5x5": self.c5x5, "pool_reduce": self.pool_reduce}

    def branch_offsets(self) -> dict[str, tuple[int, int]]:
        """Half-open channel range ``[start, stop)`` of each branch in the concatenated output."""
        out, start = {}, 0
        for b, w in self.branch_widths().items():
            out[b] = (start, start + w)
            start += w
        return out

    def conv_width(self, conv: str) -> int:
        """Output channels of block convolution ``conv`` (``"5x5"`` → :attr:`c5x5`; see :data:`circuits.names.CONVS`)."""
        return getattr(self, CONVS[conv].field)


@dataclass(frozen=True)
class ModelSpec:
    """Everything that distinguishes one InceptionV1 checkpoint from another.

    Attributes:
        name: checkpoint name (``"inceptionv1"`` or ``"inceptionv1_caffe"``).
        blocks: widths of mixed3a … mixed5b.
        num_classes: width of the classifier output (1008 for Lucid, 1000 for BVLC).
        padding: ``"caffe"`` (fixed symmetric conv padding, ceil-mode max-pool as in
            ``deploy.prototxt``) or ``"tf_same"`` (TensorFlow 'SAME' padding computed from the
            input size, max-pool padded with -inf; Lucid's graph).
        lrn: ``(size, alpha, beta, k)`` for ``torch.nn.LocalResponseNorm``.
        input_scale, input_mean, bgr: preprocessing. The model takes RGB in [0, 1] and
            computes ``x * input_scale`` (optionally RGB→BGR) ``- input_mean``.
        label_source: how the class list is found (see :mod:`circuits.labels`).
        citation: where the facts come from.
    """

    name: str
    blocks: tuple[BlockSpec, ...]
    num_classes: int
    padding: str
    lrn: tuple[int, float, float, float]
    input_scale: float
    input_mean: tuple[float, float, float]
    bgr: bool
    label_source: str
    citation: str
    conv_widths: tuple[int, int, int] = (64, 64, 192)
    aliases: tuple[str, ...] = field(default_factory=tuple)

    def block(self, name: str) -> BlockSpec:
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(f"{self.name} has no inception block {name!r}; valid: {[b.name for b in self.blocks]}")

    def layer_width(self, layer: str) -> int:
        """Number of channels (units) of a canonical layer or branch output.

        Raises:
            KeyError: unknown layer; the message lists the valid names.
        """
        if layer in CONV_LAYERS:
            return self.conv_widths[CONV_LAYERS.index(layer)]
        if layer in MIXED_LAYERS:
            return self.block(layer).out_channels
        bc = split_conv_activation(layer) if isinstance(layer, str) else None
        if bc is not None:
            return self.block(bc[0]).conv_width(bc[1])
        raise KeyError(f"unknown layer {layer!r} for {self.name}; valid layers: {', '.join(LAYERS)}")

    def branch_of(self, layer: str, index: int) -> str:
        """Branch (``1x1``, ``3x3``, ``5x5``, ``pool_reduce``) that writes channel ``index`` of a mixed layer."""
        for b, (lo, hi) in self.block(layer).branch_offsets().items():
            if lo <= index < hi:
                return b
        raise IndexError(f"{layer}:{index} out of range 0..{self.layer_width(layer) - 1}")


def _blocks(rows):
    return tuple(BlockSpec(n, *w) for n, *w in rows)


#: BVLC GoogLeNet, from ``deploy.prototxt`` and the shapes of the caffejs weight files.
INCEPTIONV1_CAFFE = ModelSpec(
    name="inceptionv1_caffe",
    blocks=_blocks([
        ("mixed3a", 64, 96, 128, 16, 32, 32),
        ("mixed3b", 128, 128, 192, 32, 96, 64),
        ("mixed4a", 192, 96, 208, 16, 48, 64),
        ("mixed4b", 160, 112, 224, 24, 64, 64),
        ("mixed4c", 128, 128, 256, 24, 64, 64),
        ("mixed4d", 112, 144, 288, 32, 64, 64),
        ("mixed4e", 256, 160, 320, 32, 128, 128),
        ("mixed5a", 256, 160, 320, 32, 128, 128),
        ("mixed5b", 384, 192, 384, 48, 128, 128),
    ]),
    num_classes=1000,
    padding="caffe",
    lrn=(5, 1e-4, 0.75, 1.0),
    input_scale=255.0,
    input_mean=(104.007, 116.669, 122.675),  # in BGR order, as the network sees it
    bgr=True,
    label_source="synset_words",
    citation="BVLC GoogLeNet (Szegedy et al. 2014; Caffe model zoo), deploy.prototxt",
    aliases=("bvlc_googlenet", "googlenet_caffe"),
)

#: Lucid's inception5h; widths from the public PyTorch ports (lucent, captum).
INCEPTIONV1 = ModelSpec(
    name="inceptionv1",
    blocks=_blocks([
        ("mixed3a", 64, 96, 128, 16, 32, 32),
        ("mixed3b", 128, 128, 192, 32, 96, 64),
        ("mixed4a", 192, 96, 204, 16, 48, 64),
        ("mixed4b", 160, 112, 224, 24, 64, 64),
        ("mixed4c", 128, 128, 256, 24, 64, 64),
        ("mixed4d", 112, 144, 288, 32, 64, 64),
        ("mixed4e", 256, 160, 320, 32, 128, 128),
        ("mixed5a", 256, 160, 320, 48, 128, 128),
        ("mixed5b", 384, 192, 384, 48, 128, 128),
    ]),
    num_classes=1008,
    padding="tf_same",
    lrn=(11, 0.0011, 0.5, 2.0),
    input_scale=255.0,
    input_mean=(117.0, 117.0, 117.0),
    bgr=False,
    label_source="lucid",
    citation="Lucid model zoo InceptionV1 (inception5h); Olah et al., Distill Circuits thread (2020)",
    aliases=("inception5h", "lucid"),
)

SPECS = {s.name: s for s in (INCEPTIONV1, INCEPTIONV1_CAFFE)}


def get_spec(name: str) -> ModelSpec:
    """Return the spec of a checkpoint by name or alias.

    Raises:
        KeyError: unknown checkpoint; the message lists the valid names.
    """
    if isinstance(name, ModelSpec):
        return name
    for s in SPECS.values():
        if name == s.name or name in s.aliases:
            return s
    raise KeyError(f"unknown checkpoint {name!r}; valid: {', '.join(SPECS)}")
