"""Texts of the refusals of names a reader gives (:mod:`app.paths`: experiment, speaker, preset and
upload names, and the file names made from them) in every language. Each English text is the
layer's template unchanged."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "path.bad_name": "invalid name {name!r}: use letters, digits, spaces, '-', '_' or '.', without slashes",
        "path.long_name": "name of {size} bytes is too long: at most {most} bytes (UTF-8), so the files named after it fit in a file name",
        "path.bad_suffix": "suffix {suffix!r} must be plain file name characters",
        "path.long_suffix": "suffix {suffix!r} leaves no room for a name within {limit} bytes",
    },
    "zh": {
        "path.bad_name": "名称 {name!r} 无效：请使用字母、数字、空格、“-”、“_”或“.”，不要含斜杠",
        "path.long_name": "名称有 {size} 字节，太长：最多 {most} 字节（UTF-8），这样以它命名的文件才能放进文件名",
        "path.bad_suffix": "后缀 {suffix!r} 只能由普通文件名字符组成",
        "path.long_suffix": "后缀 {suffix!r} 在 {limit} 字节内不给文件名留任何空间",
    },
    "zh_TW": {
        "path.bad_name": "名稱 {name!r} 無效：請使用字母、數字、空格、「-」、「_」或「.」，不要含斜線",
        "path.long_name": "名稱有 {size} 位元組，太長：最多 {most} 位元組（UTF-8），這樣以它命名的檔案才能放進檔名",
        "path.bad_suffix": "後綴 {suffix!r} 只能由一般檔名字元組成",
        "path.long_suffix": "後綴 {suffix!r} 在 {limit} 位元組內不給檔名留任何空間",
    },
    "ja": {
        "path.bad_name": "名前 {name!r} は使えません。英字、数字、空白、「-」「_」「.」を使い、スラッシュは含めないでください",
        "path.long_name": "名前が {size} バイトあり長すぎます。その名前を付けたファイル名に収まるよう、{most} バイト（UTF-8）以内にしてください",
        "path.bad_suffix": "接尾辞 {suffix!r} には通常のファイル名の文字だけを使ってください",
        "path.long_suffix": "接尾辞 {suffix!r} では {limit} バイト以内に名前を入れる余地がありません",
    },
    "ko": {
        "path.bad_name": "이름 {name!r}은(는) 쓸 수 없습니다. 문자, 숫자, 공백, '-', '_', '.'만 쓰고 슬래시는 넣지 마세요",
        "path.long_name": "이름이 {size}바이트로 너무 깁니다. 그 이름을 딴 파일 이름에 들어가도록 최대 {most}바이트(UTF-8)로 하세요",
        "path.bad_suffix": "접미사 {suffix!r}에는 일반 파일 이름 문자만 쓸 수 있습니다",
        "path.long_suffix": "접미사 {suffix!r}로는 {limit}바이트 안에 이름을 넣을 자리가 없습니다",
    },
}
