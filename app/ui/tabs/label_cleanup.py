"""The clean-up and ASR-engine controls of the Label tab's dataset panel, and the models they need.

:mod:`app.ui.tabs.label_pipeline` lays these out beside its own and passes their values to
:func:`pipeline_parts`; the choices are ids of the library (model file names, engine ids), never
display text.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import gradio as gr

from app import assets
from app.assets.registry import DOWNLOAD_COMMAND
from app.audio.denoise import DenoiseOptions
from app.data.preprocess import asr_sherpa, gtcrn
from app.data.preprocess.asr_base import ASR_ENGINES, AUTO_ENGINE
from app.data.preprocess.cleanup import (
    DEFAULT_DENOISER,
    DENOISE_ENGINES,
    DEREVERB_MODELS,
    KARAOKE_MODELS,
    CleanupOptions,
)
from app.data.preprocess.mdx import MDX_MODELS, is_installed
from app.data.preprocess.roformer import ROFORMER_MODELS, installed_models, is_roformer, model_files
from app.data.preprocess.separate import (
    DEMUCS_MODELS,
    MDX_SEPARATION_MODELS,
    VR_SEPARATION_MODELS,
    SeparateOptions,
)
from app.data.preprocess.vr import VR_MODELS
from app.data.preprocess.vr import is_installed as vr_installed
from app.ui.context import UIContext

# Separation models offered: demucs' names, UVR's MDX-Net and VR files, the published RoFormer
# checkpoints (engine chosen by the name); separation_choices adds other RoFormer pairs found in uvr5_weights/.
SEPARATION_CHOICES: tuple[str, ...] = (
    *DEMUCS_MODELS,
    *MDX_SEPARATION_MODELS,
    *VR_SEPARATION_MODELS,
    *ROFORMER_MODELS,
)
ENGINE_CHOICES: tuple[str, ...] = (AUTO_ENGINE, *sorted(ASR_ENGINES))

STRINGS = {
    "en": {
        "label.pipe.separator": "Separation model (demucs, UVR MDX-Net or VR, BS-/Mel-Band-RoFormer)",
        "label.pipe.engine": "Speech recognition engine (auto: chosen by language)",
        "label.pipe.punct": "Punctuation and digits (SenseVoice)",
        "label.clean.title": "Clean up the vocals (after separation, before slicing)",
        "label.clean.karaoke": "Keep the lead vocal only (remove backing vocals)",
        "label.clean.dereverb": "Remove reverb and echo",
        "label.clean.model": "Model",
        "label.clean.denoise": "Remove steady background noise (hiss, hum, room tone)",
        "label.clean.strength": "Denoise strength",
        "label.clean.denoiser": "Denoiser (spectral-gate: steady noise, no model; gtcrn: learned, any noise, needs its model)",
        "label.clean.models": "Models for these steps and the speech engines (✓ installed, ✗ missing: run the command)",
    },
    "zh": {
        "label.pipe.separator": "分离模型（demucs、UVR MDX-Net 或 VR、BS-/Mel-Band-RoFormer）",
        "label.pipe.engine": "语音识别引擎（auto：按语言选择）",
        "label.pipe.punct": "标点与数字（SenseVoice）",
        "label.clean.title": "人声清理（分离之后、切分之前）",
        "label.clean.karaoke": "只保留主唱（去除和声）",
        "label.clean.dereverb": "去混响与回声",
        "label.clean.model": "模型",
        "label.clean.denoise": "去除稳定背景噪声（嘶声、嗡声、房间底噪）",
        "label.clean.strength": "降噪强度",
        "label.clean.denoiser": "降噪器（spectral-gate：稳定噪声，无需模型；gtcrn：学习型，各类噪声，需要其模型）",
        "label.clean.models": "这些步骤与识别引擎所需的模型（✓ 已安装，✗ 缺失：运行对应命令）",
    },
    "zh_TW": {
        "label.pipe.separator": "分離模型（demucs、UVR MDX-Net 或 VR、BS-/Mel-Band-RoFormer）",
        "label.pipe.engine": "語音辨識引擎（auto：依語言選擇）",
        "label.pipe.punct": "標點與數字（SenseVoice）",
        "label.clean.title": "人聲清理（分離之後、切分之前）",
        "label.clean.karaoke": "只保留主唱（去除和聲）",
        "label.clean.dereverb": "去除殘響與回音",
        "label.clean.model": "模型",
        "label.clean.denoise": "去除穩定背景雜訊（嘶聲、嗡聲、房間底噪）",
        "label.clean.strength": "降噪強度",
        "label.clean.denoiser": "降噪器（spectral-gate：穩定雜訊，不需模型；gtcrn：學習式，各類雜訊，需要其模型）",
        "label.clean.models": "這些步驟與辨識引擎所需的模型（✓ 已安裝，✗ 缺少：執行對應指令）",
    },
    "ja": {
        "label.pipe.separator": "分離モデル（demucs、UVR MDX-Net または VR、BS-/Mel-Band-RoFormer）",
        "label.pipe.engine": "音声認識エンジン（auto：言語で選択）",
        "label.pipe.punct": "句読点と数字（SenseVoice）",
        "label.clean.title": "ボーカルのクリーンアップ（分離の後、分割の前）",
        "label.clean.karaoke": "メインボーカルだけを残す（コーラスを除去）",
        "label.clean.dereverb": "リバーブとエコーを除去",
        "label.clean.model": "モデル",
        "label.clean.denoise": "定常的な背景ノイズを除去（ヒス、ハム、部屋のノイズ）",
        "label.clean.strength": "ノイズ除去の強さ",
        "label.clean.denoiser": "ノイズ除去方式（spectral-gate：定常ノイズ、モデル不要／gtcrn：学習型、あらゆるノイズ、モデルが必要）",
        "label.clean.models": "これらの処理と音声認識に必要なモデル（✓ インストール済み、✗ 未導入：コマンドを実行）",
    },
    "ko": {
        "label.pipe.separator": "분리 모델 (demucs, UVR MDX-Net 또는 VR, BS-/Mel-Band-RoFormer)",
        "label.pipe.engine": "음성 인식 엔진 (auto: 언어에 따라 선택)",
        "label.pipe.punct": "문장 부호와 숫자 (SenseVoice)",
        "label.clean.title": "보컬 정리 (분리 후, 자르기 전)",
        "label.clean.karaoke": "메인 보컬만 남기기 (코러스 제거)",
        "label.clean.dereverb": "잔향과 에코 제거",
        "label.clean.model": "모델",
        "label.clean.denoise": "일정한 배경 소음 제거 (히스, 험, 방 소음)",
        "label.clean.strength": "노이즈 제거 강도",
        "label.clean.denoiser": "노이즈 제거기 (spectral-gate: 일정한 소음, 모델 불필요 / gtcrn: 학습형, 모든 소음, 모델 필요)",
        "label.clean.models": "이 단계와 음성 인식 엔진에 필요한 모델 (✓ 설치됨, ✗ 없음: 명령을 실행)",
    },
}


def separation_choices(pretrained: Path) -> list[str]:
    """The separation models offered: :data:`SEPARATION_CHOICES` and any other RoFormer pair installed."""
    extra = [name for name in installed_models(pretrained) if name not in SEPARATION_CHOICES]
    return [*SEPARATION_CHOICES, *extra]


def models_table(pretrained: Path) -> str:
    """A Markdown table: each clean-up (MDX-Net, VR, GTCRN) and sherpa-onnx ASR model, installed or not, and its download command.

    Only ids, folders and commands: nothing in it is language (the heading is a translated label).
    """
    rows = [(name, MDX_MODELS[name].asset, is_installed(name, pretrained)) for name in MDX_MODELS]
    rows += [(name, VR_MODELS[name].asset, vr_installed(name, pretrained)) for name in VR_MODELS]
    rows.append((gtcrn.GTCRN_FILE, gtcrn.GTCRN_ASSET, gtcrn.is_installed(pretrained)))
    for name, asset_id in ROFORMER_MODELS.items():
        rows.append((name, asset_id, all(p.is_file() for p in model_files(name, pretrained))))
    for folder in (asr_sherpa.SENSEVOICE_FOLDER, asr_sherpa.PARAFORMER_FOLDER):
        rows.append((folder, folder, asr_sherpa.installed(pretrained, folder)))
    punct = asr_sherpa.PUNCT_FOLDER
    rows.append((punct, punct, asr_sherpa.punctuation_model(pretrained) is not None))
    lines = ["| | | |", "|---|---|---|"]
    for name, asset_id, present in rows:
        folder = assets.local_path(assets.get(asset_id), pretrained)
        how = "" if present else f"`{DOWNLOAD_COMMAND} {asset_id}`"
        lines.append(f"| {'✓' if present else '✗'} | `{name}` ({folder.name}/) | {how} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class CleanupInputs:
    """The clean-up controls, in the order :func:`pipeline_parts` takes their values."""

    karaoke: gr.Checkbox
    karaoke_model: gr.Dropdown
    dereverb: gr.Checkbox
    dereverb_model: gr.Dropdown
    denoise: gr.Checkbox
    denoiser: gr.Dropdown
    strength: gr.Slider

    def as_list(self) -> list[gr.components.Component]:
        return [getattr(self, f.name) for f in fields(self)]


def build_cleanup(ctx: UIContext) -> CleanupInputs:
    """The clean-up block (an accordion) with the table of models present and missing."""
    with gr.Accordion(ctx.t("label.clean.title"), open=False, elem_id="label-clean"):
        with gr.Row():
            with gr.Column():
                karaoke = gr.Checkbox(
                    value=False, label=ctx.t("label.clean.karaoke"), elem_id="label-clean-karaoke"
                )
                karaoke_model = gr.Dropdown(
                    list(KARAOKE_MODELS), value=KARAOKE_MODELS[0], label=ctx.t("label.clean.model")
                )
            with gr.Column():
                dereverb = gr.Checkbox(
                    value=False, label=ctx.t("label.clean.dereverb"), elem_id="label-clean-dereverb"
                )
                dereverb_model = gr.Dropdown(
                    list(DEREVERB_MODELS), value=DEREVERB_MODELS[0], label=ctx.t("label.clean.model")
                )
            with gr.Column():
                denoise = gr.Checkbox(
                    value=False, label=ctx.t("label.clean.denoise"), elem_id="label-clean-denoise"
                )
                denoiser = gr.Dropdown(
                    list(DENOISE_ENGINES),
                    value=DEFAULT_DENOISER,
                    label=ctx.t("label.clean.denoiser"),
                    elem_id="label-clean-denoiser",
                )
                strength = gr.Slider(
                    0.0, 1.0, value=DenoiseOptions().strength, step=0.05, label=ctx.t("label.clean.strength")
                )
        gr.Markdown(ctx.t("label.clean.models"))
        gr.Markdown(models_table(ctx.layout.pretrained), elem_id="label-clean-models")
    return CleanupInputs(karaoke, karaoke_model, dereverb, dereverb_model, denoise, denoiser, strength)


def pipeline_parts(
    separator: str, shifts: float, overlap: float,
    karaoke: bool, karaoke_model: str, dereverb: bool, dereverb_model: str, denoise: bool, denoiser: str,
    strength: float,
) -> tuple[SeparateOptions, CleanupOptions]:  # fmt: skip
    """Separation and clean-up options from the panel's values (the engine follows the model's name)."""
    if separator in MDX_SEPARATION_MODELS:
        engine = "mdx"
    elif separator in VR_SEPARATION_MODELS:
        engine = "vr"
    else:
        engine = "roformer" if is_roformer(separator) else "demucs"
    separation = SeparateOptions(engine=engine, model=separator, shifts=int(shifts), overlap=float(overlap))
    cleanup = CleanupOptions(
        karaoke=karaoke_model if karaoke else None,
        dereverb=dereverb_model if dereverb else None,
        denoise=DenoiseOptions(strength=float(strength)) if denoise else None,
        denoiser=denoiser,
    )
    return separation, cleanup
