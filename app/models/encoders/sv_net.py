"""Speaker-verification embedding of GPT-SoVITS v2Pro/v2ProPlus: ERes2NetV2 (3D-Speaker) on a Kaldi fbank.

v2Pro/v2ProPlus SoVITS models add a speaker embedding to their timbre vector. Upstream computes it
with an ERes2NetV2 network (``baseWidth=24, scale=4, expansion=4``, other arguments at their
defaults, 53.6 M parameters) from the 16 kHz reference: 80-bin Kaldi fbank (:mod:`app.audio.fbank`)
-> :meth:`ERes2NetV2.forward3`, which averages the fused last-stage feature map over time instead
of running the pooling/embedding head: ``8 m_channels * expansion`` channels x 10 frequency rows
= 20480 values for upstream's model. The head (``seg_1``) exists only so the file loads strictly.

Network (module names are upstream's, so its state dict loads as is):

- stem: 3x3 conv (1 -> m) -> BN -> ReLU (unclipped);
- ``layer1``..``layer4``: residual blocks, strides 2 except ``layer1``, planes m, 2m, 4m, 8m,
  outputs planes x expansion; ``layer1``/``layer2`` blocks add neighbouring Res2Net chunks,
  ``layer3``/``layer4`` blocks fuse them with :class:`AFF`; inside blocks the activation is
  ``Hardtanh(0, 20)`` (3D-Speaker's "ReLU", clipped at 20);
- ``layer3_ds`` (3x3 stride-2 conv) brings ``layer3``'s output to ``layer4``'s shape and
  ``fuse34`` (:class:`AFF`) fuses the two.

:class:`app.models.encoders.sv.SpeakerEncoder` is the API the rest of the app uses (file ->
embeddings); the file is read by :mod:`app.models.upstream.sv`, which builds this network to check it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch import nn

from app.messages import Message

# Where upstream keeps the pretrained file, relative to pretrained_models/ (GPT_SoVITS/sv.py).
SV_FILE = Path("sv") / "pretrained_eres2netv2w24s4ep4.ckpt"
# Its id in the download catalog (app/assets/catalog.py).
SV_ASSET = "sv-eres2netv2"

# 3D-Speaker's block activation: a ReLU clipped at 20 (ERes2NetV2.py "ReLU(nn.Hardtanh)").
ACT_MAX = 20.0
# Channel reduction inside AFF's attention (fusion.py, r=4 everywhere in ERes2NetV2).
AFF_REDUCTION = 4
# Each stage after layer1 halves time and frequency.
STAGE_STRIDES = (1, 2, 2, 2)
# The embedding head reads mean and standard deviation (TSTP pooling): twice the pooled channels.
POOL_STATS = 2


class SVConfigError(ValueError):
    """A state dict or set of arguments that does not describe an ERes2NetV2 network."""


@dataclass(frozen=True)
class SVConfig:
    """ERes2NetV2 shape; the defaults are upstream's pretrained model (``pretrained_eres2netv2w24s4ep4``)."""

    m_channels: int = 64  # stem channels; the stages have m, 2m, 4m, 8m planes
    base_width: int = 24  # Res2Net chunk width = floor(planes * base_width / 64)
    scale: int = 4  # Res2Net chunks per block
    expansion: int = 4  # block output channels = planes * expansion
    num_blocks: tuple[int, int, int, int] = (3, 4, 6, 3)  # blocks in layer1..layer4
    feat_dim: int = 80  # fbank mel bins (frequency rows of the input)
    embedding_size: int = 192  # width of the unused head seg_1

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_blocks", tuple(int(n) for n in self.num_blocks))
        if len(self.num_blocks) != 4 or min(self.num_blocks) < 1:
            template = "num_blocks must be 4 positive counts, got {counts}"
            raise SVConfigError(Message("svnet.err.blocks", template, counts=self.num_blocks))
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "num_blocks" and (not isinstance(value, int) or value < 1):
                template = "{name} must be a positive integer, got {value!r}"
                raise SVConfigError(Message("svnet.err.int", template, name=f.name, value=value))
        if min(self.width(s) for s in range(4)) < 1:
            template = "base_width {width} gives empty Res2Net chunks for m={m}"
            raise SVConfigError(
                Message("svnet.err.width", template, width=self.base_width, m=self.m_channels)
            )

    def planes(self, stage: int) -> int:
        """Planes of stage ``stage`` (0-based): m * 2**stage."""
        return self.m_channels * 2**stage

    def width(self, stage: int) -> int:
        """Channels of one Res2Net chunk in stage ``stage`` (0-based)."""
        return math.floor(self.planes(stage) * (self.base_width / 64.0))

    @property
    def out_channels(self) -> int:
        """Channels of layer4 / fuse34: 8m * expansion."""
        return self.planes(3) * self.expansion

    @property
    def out_freq(self) -> int:
        """Frequency rows left after the three stride-2 stages (80 -> 10)."""
        rows = self.feat_dim
        for stride in STAGE_STRIDES:
            rows = -(-rows // stride)  # 3x3 pad 1 and 1x1 pad 0 convs map L -> ceil(L / stride)
        return rows

    @property
    def emb_dim(self) -> int:
        """Width of :meth:`ERes2NetV2.forward3`'s embedding: 8m * expansion * rows (20480 upstream)."""
        return self.out_channels * self.out_freq

    @property
    def head_in(self) -> int:
        """Input width of seg_1: upstream's ``int(feat_dim / 8) * m * 8 * expansion`` times 2 stats."""
        return (self.feat_dim // 8) * self.m_channels * 8 * self.expansion * POOL_STATS

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor]) -> SVConfig:
        """Read the shape from an upstream ERes2NetV2 state dict (the file holds no config).

        ``m_channels`` = stem conv outputs; ``scale`` = ``convs`` per block; ``expansion`` = block
        outputs / planes; ``num_blocks`` = ``layerN.K`` prefixes; ``base_width`` = the smallest
        integer giving every stage's chunk width (all such values build the same network);
        ``embedding_size`` and ``feat_dim`` from ``seg_1`` (``feat_dim`` to a multiple of 8).

        Raises:
            SVConfigError: a tensor it needs is missing or the shapes disagree.
        """

        def shape(key: str) -> torch.Size:
            if key not in state:
                raise SVConfigError(Message("svnet.err.no_key", "no '{key}' among the weights", key=key))
            return state[key].shape

        m = int(shape("conv1.weight")[0])
        scale = sum(1 for k in state if re.fullmatch(r"layer1\.0\.convs\.\d+\.weight", k))
        if scale < 1:
            raise SVConfigError(
                Message("svnet.err.no_convs", "no 'layer1.0.convs.N.weight' among the weights")
            )
        block_out = int(shape("layer1.0.conv3.weight")[0])
        if block_out % m:
            template = "layer1 outputs {channels} channels, not a multiple of m_channels {m}"
            raise SVConfigError(Message("svnet.err.layer1", template, channels=block_out, m=m))
        num_blocks = []
        for n in range(1, 5):
            ids = {int(g.group(1)) for k in state if (g := re.match(rf"layer{n}\.(\d+)\.", k))}
            if ids != set(range(len(ids))) or not ids:
                template = "layer{n} blocks are not numbered 0..N-1: {ids}"
                raise SVConfigError(Message("svnet.err.numbered", template, n=n, ids=sorted(ids)))
            num_blocks.append(len(ids))
        widths = [int(shape(f"layer{n}.0.convs.0.weight")[0]) for n in range(1, 5)]
        top_planes = m * 8
        base_width = max(1, -(-64 * widths[3] // top_planes))  # smallest bw with floor(8m bw / 64) = width4
        head_out, head_in = (int(s) for s in shape("seg_1.weight"))
        per_row = m * 8 * (block_out // m) * POOL_STATS
        if head_in % per_row:
            template = "seg_1 reads {features} features, not a multiple of {per_row}"
            raise SVConfigError(Message("svnet.err.seg1", template, features=head_in, per_row=per_row))
        config = cls(
            m_channels=m,
            base_width=base_width,
            scale=scale,
            expansion=block_out // m,
            num_blocks=tuple(num_blocks),  # type: ignore[arg-type]
            feat_dim=8 * (head_in // per_row),
            embedding_size=head_out,
        )
        got = [config.width(s) for s in range(4)]
        if got != widths:
            template = "chunk widths {widths} of layer1..4 fit no single base_width"
            raise SVConfigError(Message("svnet.err.widths", template, widths=widths))
        return config


class AFF(nn.Module):
    """Attentional feature fusion of two maps of C channels (3D-Speaker ``fusion.AFF``).

    ``w = 1 + tanh(att(cat(x, y)))`` in (0, 2), ``att`` = 1x1 conv (2C -> C/4, bias) -> BN -> SiLU
    -> 1x1 conv (-> C, bias) -> BN; output ``x w + y (2 - w)``: a per-element convex mix, doubled.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = channels // AFF_REDUCTION
        self.local_att = nn.Sequential(
            nn.Conv2d(2 * channels, inner, kernel_size=1),
            nn.BatchNorm2d(inner),
            nn.SiLU(),
            nn.Conv2d(inner, channels, kernel_size=1),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B, C, F, T) x2 -> (B, C, F, T)."""
        w = 1.0 + torch.tanh(self.local_att(torch.cat((x, y), dim=1)))
        return x * w + y * (2.0 - w)


class Block(nn.Module):
    """ERes2NetV2 residual block (``BasicBlockERes2NetV2``, or ``...AFF`` when ``fuse``).

    1x1 conv (carries the stride) -> BN -> act; split into ``scale`` chunks; chunk i > 0 is first
    combined with the previous chunk's output (sum, or AFF when ``fuse``), every chunk then goes
    through 3x3 conv -> BN -> act; the chunk outputs are concatenated, 1x1 conv -> BN, plus the
    shortcut, act. act = Hardtanh(0, 20).
    """

    def __init__(
        self, in_planes: int, planes: int, stride: int, width: int, scale: int, expansion: int, fuse: bool
    ) -> None:
        super().__init__()
        out = planes * expansion
        self.width = width
        self.conv1 = nn.Conv2d(in_planes, width * scale, kernel_size=1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(width * scale)
        self.convs = nn.ModuleList(
            nn.Conv2d(width, width, kernel_size=3, padding=1, bias=False) for _ in range(scale)
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(scale))
        if fuse:
            self.fuse_models = nn.ModuleList(AFF(width) for _ in range(scale - 1))
        self.fuse = fuse
        self.act = nn.Hardtanh(0.0, ACT_MAX)
        self.conv3 = nn.Conv2d(width * scale, out, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, out, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_planes, F, T) -> (B, planes * expansion, ceil(F / stride), ceil(T / stride))."""
        chunks = torch.split(self.act(self.bn1(self.conv1(x))), self.width, dim=1)  # scale x (B, w, F', T')
        outs: list[torch.Tensor] = []
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=True)):
            if i == 0:
                sp = chunks[0]
            elif self.fuse:
                sp = self.fuse_models[i - 1](outs[-1], chunks[i])
            else:
                sp = outs[-1] + chunks[i]
            outs.append(self.act(bn(conv(sp))))
        out = self.bn3(self.conv3(torch.cat(outs, dim=1)))
        return self.act(out + self.shortcut(x))


class ERes2NetV2(nn.Module):
    """ERes2NetV2 as GPT-SoVITS uses it: :meth:`forward3` only (see the module docstring)."""

    def __init__(self, config: SVConfig) -> None:
        super().__init__()
        self.config = c = config
        self.conv1 = nn.Conv2d(1, c.m_channels, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c.m_channels)
        in_planes = c.m_channels
        for stage, (stride, blocks) in enumerate(zip(STAGE_STRIDES, c.num_blocks, strict=True)):
            layer = []
            for i in range(blocks):
                layer.append(
                    Block(
                        in_planes,
                        c.planes(stage),
                        stride if i == 0 else 1,
                        c.width(stage),
                        c.scale,
                        c.expansion,
                        fuse=stage >= 2,  # layer3/layer4 fuse chunks with AFF
                    )
                )
                in_planes = c.planes(stage) * c.expansion
            self.add_module(f"layer{stage + 1}", nn.Sequential(*layer))
        self.layer3_ds = nn.Conv2d(
            c.planes(2) * c.expansion, c.out_channels, kernel_size=3, padding=1, stride=2, bias=False
        )
        self.fuse34 = AFF(c.out_channels)
        # Upstream's embedding head (after TSTP pooling, which has no weights). forward3 does not
        # use it; it is kept so the pretrained file loads strictly.
        self.seg_1 = nn.Linear(c.head_in, c.embedding_size)

    def forward3(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, T, feat_dim) fbank -> (B, emb_dim): the fused map flattened over (C, F), averaged over time."""
        x = feats.transpose(1, 2).unsqueeze(1)  # (B, 1, F, T)
        x = torch.relu(self.bn1(self.conv1(x)))  # (B, m, F, T)
        out3 = self.layer3(self.layer2(self.layer1(x)))  # (B, 4m e, F/4, T/4)
        out4 = self.layer4(out3)  # (B, 8m e, F/8, T/8)
        fused = self.fuse34(out4, self.layer3_ds(out3))  # (B, 8m e, F/8, T/8)
        return fused.flatten(1, 2).mean(-1)  # (B, 8m e * F/8)
