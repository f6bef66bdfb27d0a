"""Texts of the running tools' messages in every language: the live SVC conversion's block checks
(:mod:`app.infer.svc.live`) and the background jobs' refusals (:mod:`app.services.jobs`: training
runs). Each English text is the layer's template unchanged."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "live.err.block": "block length {value:g} s is out of range; choose {low:g}-{high:g} s",
        "live.err.negative": "{name} must be >= 0 s, got {value:g}",
        "live.err.crossfade": "the cross-fade ({crossfade:g} s) must not be longer than the block ({block:g} s)",
        "live.err.shape": "a block is {samples} samples at {rate} Hz, got shape {shape}",
        "live.err.not_finite": "the input block contains NaN or infinite samples",
        "jobs.err.no_job": "no job {job!r} under {root}",
        "jobs.err.unreadable": "{path}: unreadable job record ({problem})",
        "jobs.err.no_config": "config file {path} does not exist; write the run's config first",
        "jobs.err.start": "could not start {command}: {problem}",
    },
    "zh": {
        "live.err.block": "区块长度 {value:g} 秒超出范围；请选择 {low:g}-{high:g} 秒",
        "live.err.negative": "{name} 必须 >= 0 秒，当前为 {value:g}",
        "live.err.crossfade": "交叉淡化（{crossfade:g} 秒）不能比区块（{block:g} 秒）长",
        "live.err.shape": "一个区块是 {rate} Hz 下的 {samples} 个采样，收到的形状为 {shape}",
        "live.err.not_finite": "输入区块含有 NaN 或无穷大的采样",
        "jobs.err.no_job": "{root} 下没有任务 {job!r}",
        "jobs.err.unreadable": "{path}：无法读取的任务记录（{problem}）",
        "jobs.err.no_config": "配置文件 {path} 不存在；请先写好这次训练的配置",
        "jobs.err.start": "无法启动 {command}：{problem}",
    },
    "zh_TW": {
        "live.err.block": "區塊長度 {value:g} 秒超出範圍；請選擇 {low:g}-{high:g} 秒",
        "live.err.negative": "{name} 必須 >= 0 秒，目前為 {value:g}",
        "live.err.crossfade": "交叉淡化（{crossfade:g} 秒）不能比區塊（{block:g} 秒）長",
        "live.err.shape": "一個區塊是 {rate} Hz 下的 {samples} 個取樣，收到的形狀為 {shape}",
        "live.err.not_finite": "輸入區塊含有 NaN 或無窮大的取樣",
        "jobs.err.no_job": "{root} 下沒有工作 {job!r}",
        "jobs.err.unreadable": "{path}：無法讀取的工作記錄（{problem}）",
        "jobs.err.no_config": "設定檔 {path} 不存在；請先寫好這次訓練的設定",
        "jobs.err.start": "無法啟動 {command}：{problem}",
    },
    "ja": {
        "live.err.block": "ブロック長 {value:g} 秒は範囲外です。{low:g}〜{high:g} 秒にしてください",
        "live.err.negative": "{name} は 0 秒以上にしてください（現在 {value:g}）",
        "live.err.crossfade": "クロスフェード（{crossfade:g} 秒）はブロック（{block:g} 秒）より長くできません",
        "live.err.shape": "ブロックは {rate} Hz で {samples} サンプルですが、形状 {shape} を受け取りました",
        "live.err.not_finite": "入力ブロックに NaN または無限大のサンプルがあります",
        "jobs.err.no_job": "{root} にジョブ {job!r} はありません",
        "jobs.err.unreadable": "{path}：ジョブの記録を読めません（{problem}）",
        "jobs.err.no_config": "設定ファイル {path} がありません。先に学習の設定を書き出してください",
        "jobs.err.start": "{command} を開始できませんでした：{problem}",
    },
    "ko": {
        "live.err.block": "블록 길이 {value:g}초가 범위를 벗어났습니다. {low:g}-{high:g}초로 고르세요",
        "live.err.negative": "{name}은(는) 0초 이상이어야 합니다(현재 {value:g})",
        "live.err.crossfade": "크로스페이드({crossfade:g}초)는 블록({block:g}초)보다 길 수 없습니다",
        "live.err.shape": "블록은 {rate} Hz에서 {samples}샘플인데 모양 {shape}을(를) 받았습니다",
        "live.err.not_finite": "입력 블록에 NaN 또는 무한대 샘플이 있습니다",
        "jobs.err.no_job": "{root} 아래에 작업 {job!r}이(가) 없습니다",
        "jobs.err.unreadable": "{path}: 작업 기록을 읽을 수 없습니다({problem})",
        "jobs.err.no_config": "설정 파일 {path}이(가) 없습니다. 먼저 학습 설정을 쓰세요",
        "jobs.err.start": "{command}을(를) 시작할 수 없습니다: {problem}",
    },
}
