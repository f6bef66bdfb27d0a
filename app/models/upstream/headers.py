"""The leading bytes of upstream's SoVITS exports: one table for every reader that meets them.

GPT-SoVITS writes its exported SoVITS ``.pth`` files as a zip (``torch.save``) whose first two
bytes ``PK`` are replaced by an ASCII version tag (``process_ckpt.py``): the SoVITS reader restores
``PK`` and reads the tag; the other readers (GPT, speaker verification, vocoder, so-vits-svc) use
the table to say "this is a SoVITS model" instead of "corrupt file".
"""

from __future__ import annotations

# The zip header torch.save writes, which the version tags replace.
ZIP_HEADER = b"PK"
# Leading bytes upstream writes instead of the zip's "PK" (process_ckpt.py), and what they mean.
HEADER_VERSIONS = {
    b"00": "v1",
    b"01": "v2",
    b"02": "v3",
    b"03": "v3 LoRA",
    b"04": "v4 LoRA",
    b"05": "v2Pro",
    b"06": "v2ProPlus",
}
# Tags written on export: only v2Pro/v2ProPlus weights (v1/v2 and v3/v4 exports keep "PK").
VERSION_HEADERS = {"v2Pro": b"05", "v2ProPlus": b"06"}
# Tags of LoRA exports -> the version of their base model.
LORA_HEADERS = {b"03": "v3", b"04": "v4"}
