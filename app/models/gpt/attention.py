"""Where the GPT looked while it spoke: attention of generated tokens over the text's phones.

Word timestamps (:mod:`app.infer.alignment`) need, for every generated semantic token, how much
it attended to each phone. Decoding does not keep attention weights (the step's kernels never
form them), so :func:`text_attention` runs the sequence once more, teacher-forced: the text, the
prompt tokens and the generated tokens in one pass over the decoding engine's own packed kernels
(the model's float32 weights may be freed after packing). Causal masking makes each query's
attention the same as during decoding: the query that predicted token ``j`` (the previous
column) sees exactly what the decoding step saw.

The weights are averaged over every head of every layer: no single head is known to align for
every trained model, and the average keeps the text positions the stack as a whole attended.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from app.models.gpt.engine import Network
from app.models.gpt.layers import LAYER_NORM_EPS, sine_table


@torch.inference_mode()
def text_attention(
    net: Network,
    phones: torch.Tensor,
    bert: torch.Tensor,
    prompt: torch.Tensor | None,
    tokens: torch.Tensor,
) -> torch.Tensor:
    """Attention of each generated token over the text positions, averaged over layers and heads.

    Args:
        phones: ``(Tx,)`` phone ids of the row (prompt phones then the segment's).
        bert: ``(bert_dim, Tx)`` their BERT features.
        prompt: ``(Tp,)`` semantic tokens of the reference, or None (reference-free).
        tokens: ``(N,)`` the tokens generated for the row (no EOS).

    Returns:
        ``(N, Tx)`` float32; row ``j`` is the attention of the query that predicted token ``j``,
        over the text columns (each row sums to at most 1: the rest went to audio columns).
    """
    kern = net.engine.kernels_for(net)
    device, dtype = kern.device, kern.dtype
    D, H, N = net.config.dim, kern.n_head, int(tokens.numel())
    Tx = int(phones.numel())
    if N == 0:
        return torch.zeros(0, Tx)
    prompt_ids = torch.zeros(0, dtype=torch.long) if prompt is None else prompt.reshape(-1).cpu()
    audio_ids = torch.cat([prompt_ids, tokens.reshape(-1).cpu()[:-1]]).to(device)  # (Ty,) inputs
    Ty = int(audio_ids.numel())
    S = Tx + Ty
    text = net.ar_text_embedding.word_embeddings(phones.reshape(1, -1).to(device))
    text = text + kern.bert_proj(bert.T[None].to(device, dtype))  # (1, Tx, D)
    text = text + net.ar_text_position.alpha * sine_table(Tx, D).to(device, dtype)
    x = text
    if Ty:
        audio = net.ar_audio_embedding.word_embeddings(audio_ids[None])  # (1, Ty, D)
        audio = audio + net.ar_audio_position.alpha * sine_table(Ty, D).to(device, dtype)
        x = torch.cat([text, audio], dim=1)  # (1, S, D)
    q_pos = torch.arange(S, device=device)[:, None]
    k_pos = torch.arange(S, device=device)[None, :]
    allowed = (k_pos < Tx) | ((q_pos >= Tx) & (k_pos <= q_pos))  # the training mask (S, S)
    total = torch.zeros(N, Tx, device=device)
    for lk in kern.layers:
        q, k, v = lk.qkv(x).view(1, S, 3, H, D // H).transpose(1, 3).unbind(2)  # 3 x (1, H, S, hd)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(D // H)  # (1, H, S, S)
        probs = scores.float().masked_fill(~allowed, float("-inf")).softmax(-1)
        total += probs[0, :, S - N :, :Tx].mean(0)  # queries predicting tokens 0..N-1
        att = (probs.to(v.dtype) @ v).transpose(1, 2).reshape(1, S, D)
        x = F.layer_norm(x + lk.out(att), (D,), *lk.norm1, LAYER_NORM_EPS)
        x = F.layer_norm(x + lk.ffn_out(lk.ffn_in(x)), (D,), *lk.norm2, LAYER_NORM_EPS)
    return (total / len(kern.layers)).cpu()
