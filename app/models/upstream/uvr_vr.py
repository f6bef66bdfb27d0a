"""UVR's VR-architecture ``.pth`` files (upstream's ``tools/uvr5/uvr5_weights/HP*.pth``, ``VR-DeEcho*.pth``).

Layout: a bare ``torch.save`` of the network's state dict, saved in float16 by the publishers
(HP2_all_vocals.pth is ~63 MB for 31.6 M weights), with no config. Upstream picks the network by
the file name ("DeEcho" in it: the new CascadedNet, 64 channels when "DeReverb" is in it too, else
48; otherwise the v5 ASPP network with 32). Here the network kind comes from the keys and its
widths from the tensors, so a file is checked against what it holds, and then loaded strictly.

Files are read through the restricted unpickler (:mod:`safe_pickle`): nothing in them runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from app.messages import Message, said
from app.models.nn.skip_init import shape_mismatch, state_shapes
from app.models.upstream.safe_pickle import CheckpointError, load, read_file
from app.models.uvr.nets import AsppNet, AsppNetConfig, CascadedNet, CascadedNetConfig, VrNet

ASPP = "aspp"  # UVR v5 CascadedASPPNet
CASCADED = "cascaded"  # UVR "new" CascadedNet
# A key only each kind has.
_MARKERS = {ASPP: "stg2_bridge.conv.0.weight", CASCADED: "stg3_full_band_net.lstm_dec2.dense.0.weight"}


def net_kind(state: Mapping[str, torch.Tensor]) -> str | None:
    """ASPP or CASCADED by the keys of ``state``; None when it is neither."""
    for kind, marker in _MARKERS.items():
        if marker in state:
            return kind
    return None


def config_from_state(state: Mapping[str, torch.Tensor], n_fft: int) -> AsppNetConfig | CascadedNetConfig:
    """The network's config from its tensors: ``out.weight`` is ``(2, channels, 1, 1)``; the LSTM's
    dense layer ``(bins at its level, LSTM features)``. ``n_fft`` comes from the band parameters."""
    kind = net_kind(state)
    channels = int(state["out.weight"].shape[1])
    if kind == ASPP:
        return AsppNetConfig(n_fft=n_fft, width=channels // 2)
    if kind == CASCADED:
        dense = state[_MARKERS[CASCADED]].shape  # (nin_lstm, nout_lstm): nin_lstm = n_fft / 4
        if int(dense[0]) * 4 != n_fft:
            template = "its LSTM reads {bins} bins, the band parameters give {wanted}"
            raise ValueError(Message("uvr.err.lstm", template, bins=int(dense[0]), wanted=n_fft // 4))
        return CascadedNetConfig(n_fft=n_fft, nout=channels, nout_lstm=int(dense[1]))
    raise ValueError(
        Message("uvr.err.markers", "not a UVR VR-architecture state dict (no stg2_bridge or lstm_dec2 keys)")
    )


def load_vr_net(path: Path, kind: str, n_fft: int) -> VrNet:
    """The network in ``path``, float32, eval mode; CheckpointError naming the file when it is not
    a ``kind`` network with ``n_fft`` bins, or does not load strictly."""
    obj = load(read_file(path), str(path))
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        template = "{path}: expected a UVR VR-architecture state dict (name -> tensor)"
        raise CheckpointError(Message("uvr.err.not_state", template, path=str(path)))
    state = {str(k): v for k, v in obj.items()}
    found = net_kind(state)
    if found != kind:
        other = Message("uvr.what.network", "a {kind} network", kind=found) if found else ""
        what = other or Message("uvr.what.not_vr", "not a UVR VR-architecture network")
        template = "{path}: this is {what}, expected a {kind} network for this file name"
        raise CheckpointError(Message("uvr.err.kind", template, path=str(path), what=what, kind=kind))
    if "out.weight" not in state:
        template = "{path}: the output layer (out.weight) is missing; download the file again"
        raise CheckpointError(Message("uvr.err.no_out", template, path=str(path)))
    try:
        config = config_from_state(state, n_fft)
    except ValueError as exc:
        raise CheckpointError(
            Message(
                "uvr.err.config",
                "{path}: the network does not fit the band parameters of its file name ({problem}); download the file again or keep upstream's name",
                path=str(path),
                problem=said(exc),
            )
        ) from None
    build = (lambda: AsppNet(config)) if kind == ASPP else (lambda: CascadedNet(config))  # type: ignore[arg-type]
    problem = shape_mismatch(state_shapes(build), state)
    if problem:
        template = "{path}: does not fit UVR's {kind} network ({problem}); download it again"
        raise CheckpointError(Message("uvr.err.shapes", template, path=str(path), kind=kind, problem=problem))
    net = build()
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
    return net.eval()
