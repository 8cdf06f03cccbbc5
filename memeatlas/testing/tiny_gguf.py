"""A tiny random Qwen2 *text* model written as GGUF, for llama.cpp-based servers in tests.

`build_tiny_gguf(path)` writes a llama.cpp-loadable file (a few hundred kB, under a second)
with the `gguf` package: the Qwen2 architecture (2 layers, width 64), the byte-level BPE of
`memeatlas.testing.tiny_qwen` (special tokens, merges, Qwen's chat template) and random
float32 weights. `llama-cpp-python`'s OpenAI-compatible server (or llama.cpp's `llama-server`)
serves it like any GGUF; it cannot see images, which is what the vision-probe tests need.

Like the tiny Qwen2.5-VL's `sequence_bias`, the weights carry a built-in preference for tokens
holding a double quote (and, half as strongly, `]`): every token embedding shares one large
constant component, the final norm keeps it, and the output rows of those tokens align with it.
A random model under a JSON grammar otherwise fills each string to its bound; with the bias its
constrained answers end after tens of tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

# Qwen2.5-Instruct's text chat template (tools left out): `content` must be a string.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{%- endif %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}"
)

HIDDEN = 64
LAYERS = 2
HEADS = 4
KV_HEADS = 2
FFN = 128
CONTEXT = 4096


def _merges(tokenizer) -> list[str]:
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    return [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]


def _vocab_from_gguf(path: str | Path) -> dict:
    """Tokens, types, merges, special ids and chat template of a (vocab-only) GGUF file."""
    import gguf

    r = gguf.GGUFReader(str(path))

    def strings(key: str) -> list[str]:
        f = r.fields[key]
        return [bytes(f.parts[i]).decode("utf-8", errors="replace") for i in f.data]

    def scalar(key: str):
        f = r.fields.get(key)
        return None if f is None else f.parts[f.data[0]].tolist()[0]

    tmpl = r.fields.get("tokenizer.chat_template")
    return {"tokens": strings("tokenizer.ggml.tokens"),
            "types": [int(r.fields["tokenizer.ggml.token_type"].parts[i][0])
                      for i in r.fields["tokenizer.ggml.token_type"].data],
            "merges": strings("tokenizer.ggml.merges"),
            "pre": bytes(r.fields["tokenizer.ggml.pre"].parts[-1]).decode(),
            "bos": scalar("tokenizer.ggml.bos_token_id"),
            "eos": scalar("tokenizer.ggml.eos_token_id"),
            "pad": scalar("tokenizer.ggml.padding_token_id"),
            "chat_template": bytes(tmpl.parts[-1]).decode() if tmpl else None}


def build_tiny_gguf(path: str | Path, *, seed: int = 0, quote_bias: float = 8.0,
                    vocab_from: str | Path | None = None) -> Path:
    """Write the tiny random Qwen2 text model to `path` (a .gguf file); returns the path.

    quote_bias: the logit advantage of tokens holding '"' (']' gets half); 0 turns it off.
    vocab_from: a GGUF whose tokenizer to use instead of the tiny BPE, e.g. the vocab-only
    `models/ggml-vocab-qwen2.gguf` in llama.cpp's source (Qwen2's real 151,936 tokens, so
    a grammar sampler does a real model's per-token work; the file is then about 80 MB).
    """
    import gguf
    import numpy as np

    if vocab_from is not None:
        v = _vocab_from_gguf(vocab_from)
        tokens, types, merges = v["tokens"], v["types"], v["merges"]
        vocab = {t: i for i, t in enumerate(tokens)}
        pre, bos, eos, pad = v["pre"], v["bos"], v["eos"], v["pad"]
        eos = vocab.get("<|im_end|>", eos)  # chat models stop at the end of the turn
        template = CHAT_TEMPLATE

        def text_of(t: str) -> str:
            return t
    else:
        from memeatlas.testing.tiny_qwen import SPECIAL_TOKENS, _tokenizer

        tok = _tokenizer(vocab_size=1500)
        vocab = tok.get_vocab()
        by_id = sorted(vocab.items(), key=lambda kv: kv[1])
        assert [i for _, i in by_id] == list(range(len(by_id))), "token ids must be dense"
        tokens = [t for t, _ in by_id]
        specials = set(SPECIAL_TOKENS)
        types = [gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL
                 for t in tokens]
        merges = _merges(tok)
        pre, template = "qwen2", CHAT_TEMPLATE
        bos = pad = vocab["<|endoftext|>"]
        eos = vocab["<|im_end|>"]

        def text_of(t: str) -> str:
            return tok.convert_tokens_to_string([t])

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    n_vocab = len(tokens)
    head_dim = HIDDEN // HEADS

    rng = np.random.default_rng(seed)

    def rand(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w = gguf.GGUFWriter(str(out), "qwen2")
    w.add_name("memeatlas-tiny-qwen2")
    w.add_context_length(CONTEXT)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_freq_base(1_000_000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    if bos is not None:
        w.add_bos_token_id(bos)
    w.add_eos_token_id(eos)
    if pad is not None:
        w.add_pad_token_id(pad)
    w.add_add_bos_token(False)
    w.add_chat_template(template)

    emb = rand(n_vocab, HIDDEN)
    out_w = rand(n_vocab, HIDDEN)
    if quote_bias:
        # Dimension 0 of the residual stream carries a constant that RMSNorm turns into about
        # sqrt(HIDDEN); the output rows below read it as a fixed per-token logit bias.
        emb[:, 0] = 10.0
        out_w[:, 0] = 0.0
        norm_dim0 = float(np.sqrt(HIDDEN))
        for t, i in vocab.items():
            text = text_of(t)
            if '"' in text:
                out_w[i, 0] = quote_bias / norm_dim0
            elif text.strip() == "]":
                out_w[i, 0] = quote_bias / 2 / norm_dim0
    w.add_tensor("token_embd.weight", emb)
    for b in range(LAYERS):
        p = f"blk.{b}."
        w.add_tensor(p + "attn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
        w.add_tensor(p + "attn_q.weight", rand(HEADS * head_dim, HIDDEN))
        w.add_tensor(p + "attn_q.bias", rand(HEADS * head_dim))
        w.add_tensor(p + "attn_k.weight", rand(KV_HEADS * head_dim, HIDDEN))
        w.add_tensor(p + "attn_k.bias", rand(KV_HEADS * head_dim))
        w.add_tensor(p + "attn_v.weight", rand(KV_HEADS * head_dim, HIDDEN))
        w.add_tensor(p + "attn_v.bias", rand(KV_HEADS * head_dim))
        w.add_tensor(p + "attn_output.weight", rand(HIDDEN, HEADS * head_dim))
        w.add_tensor(p + "ffn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
        w.add_tensor(p + "ffn_gate.weight", rand(FFN, HIDDEN))
        w.add_tensor(p + "ffn_up.weight", rand(FFN, HIDDEN))
        w.add_tensor(p + "ffn_down.weight", rand(HIDDEN, FFN))
    w.add_tensor("output_norm.weight", np.ones(HIDDEN, dtype=np.float32))
    w.add_tensor("output.weight", out_w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out
