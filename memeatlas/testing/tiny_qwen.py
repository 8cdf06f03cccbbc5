"""A tiny, randomly initialised Qwen2.5-VL that builds offline in about a second.

Tests, benchmarks and the label step's LLM tests use it to exercise the real
transformers code path (processor, chat template, vision tower, generate,
xgrammar) without downloading weights. Its outputs are noise; under a JSON
Schema constraint they are still valid JSON, which is what the tests need.

`build_tiny_qwen25vl(out_dir)` writes a directory that
`AutoProcessor.from_pretrained` / `AutoModelForImageTextToText.from_pretrained`
(and so `memeatlas caption --model DIR`) load like any Hub checkpoint.
`size="3b"` writes the real Qwen2.5-VL-3B-Instruct architecture with random
weights (about 7.5 GB in bf16) for throughput benchmarks on a GPU.
"""

from __future__ import annotations

import json
from pathlib import Path

# Qwen2.5's own special tokens, in Qwen's order. They get the first ids here.
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
    "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>",
    "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]

# The chat template Qwen2.5-VL-Instruct ships (images and videos as content items).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Text the tiny BPE is trained on: JSON punctuation and common English, so that
# constrained decoding has multi-character tokens to choose from.
_TRAIN_TEXT = [
    '{"description": "", "ocr_text": "", "intent": "", "entities": [], "template": null, '
    '"tone": "humorous"}',
    '{"name": "cat", "role": "hero", "stands_for": "the poster"}',
    "villain victim other sarcastic wholesome angry sad neutral humorous",
    "a meme with a cat and a dog, text at the top and the bottom, when you realise it is monday",
    "the quick brown fox jumps over the lazy dog 0123456789 , . : ; ! ? ' \" ( ) [ ] { }",
]


def _tokenizer(vocab_size: int):
    """A byte-level BPE trained in memory: specials first, then all 256 bytes, then merges."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    texts = list(_TRAIN_TEXT)
    try:  # merges for the default caption prompt keep its token count near a real tokenizer's
        from memeatlas.caption.prompts import default_template

        texts.append(default_template())
    except Exception:  # pragma: no cover - the builder must not depend on the caption package
        pass
    tok.train_from_iterator(texts * 4, trainer=trainer)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        unk_token=None, model_max_length=32768,
    )
    hf.chat_template = CHAT_TEMPLATE
    return hf


def _config(tokenizer, size: str):
    from transformers import Qwen2_5_VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    if size == "tiny":
        head_dim = 16
        text = dict(
            vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=4096,
            # mrope sections split head_dim/2 rotary frequencies over (t, h, w).
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                             "mrope_section": [2, 3, 3]},
        )
        vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                      out_hidden_size=64, patch_size=14, spatial_merge_size=2,
                      temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1])
        assert sum(text["rope_parameters"]["mrope_section"]) == head_dim // 2
    elif size == "3b":
        # Qwen2.5-VL-3B-Instruct's published architecture (vocab padded as upstream).
        text = dict(
            vocab_size=151936, hidden_size=2048, intermediate_size=11008,
            num_hidden_layers=36, num_attention_heads=16, num_key_value_heads=2,
            max_position_embeddings=128000, tie_word_embeddings=True, rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                             "mrope_section": [16, 24, 24]},
        )
        vision = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16,
                      out_hidden_size=2048, patch_size=14, spatial_merge_size=2,
                      temporal_patch_size=2, window_size=112,
                      fullatt_block_indexes=[7, 15, 23, 31])
    else:
        raise ValueError(f"size must be 'tiny' or '3b', got {size!r}")
    text.update(bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                pad_token_id=ids["<|endoftext|>"])
    return Qwen2_5_VLConfig(
        text_config=text, vision_config=vision,
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=bool(text.get("tie_word_embeddings", False)),
    )


def _closing_bias(tokenizer, bias: float) -> list:
    out = []
    for tok_str, tid in tokenizer.get_vocab().items():
        text = tokenizer.convert_tokens_to_string([tok_str])
        # '{"' (open an entity) outbids ']' (close the list), which outbids ',':
        # every tiny annotation gets exactly one entity and then stops.
        if '"' in text:
            out.append([[int(tid)], float(bias)])
        elif text.strip() == "]":
            out.append([[int(tid)], float(bias) / 2])
    return out


def build_tiny_qwen25vl(out_dir: str | Path, *, size: str = "tiny", seed: int = 0,
                        max_pixels: int = 28 * 28 * 16, dtype: str = "float32",
                        quote_bias: float = 8.0) -> Path:
    """Write a random Qwen2.5-VL (tokenizer, processor, config, weights) to `out_dir`.

    size: "tiny" (a few hundred kB, builds in < 1 s on CPU) or "3b" (real
    Qwen2.5-VL-3B shapes, random weights, for GPU throughput benchmarks).
    max_pixels: the image processor's pixel budget (tiny default: 16 visual tokens).
    quote_bias: logit bias (in generation_config.sequence_bias) on tokens holding a
    double quote or ']', so random constrained outputs end in tens of tokens (0: off).
    Returns the directory, loadable by the `transformers` caption backend.
    """
    import torch
    from transformers import (
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(vocab_size=1500)
    config = _config(tokenizer, size)
    torch.manual_seed(seed)
    torch_dtype = getattr(torch, dtype)
    # Real-size models are initialised on the GPU when there is one (seconds, not minutes).
    init_device = "cuda" if size != "tiny" and torch.cuda.is_available() else "cpu"
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch_dtype)
    try:
        with torch.device(init_device):
            model = Qwen2_5_VLForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(prev)
    model = model.to(torch_dtype)
    model.eval()
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.generation_config.do_sample = False
    if quote_bias:
        # A random model under a JSON grammar otherwise fills every string to its
        # bound (hundreds of tokens). Biasing the tokens that close a string or
        # an array keeps tiny outputs short (tens of tokens) while still valid
        # and still varied (the bias ties with the random logits).
        model.generation_config.sequence_bias = _closing_bias(tokenizer, quote_bias)
    image_processor = Qwen2VLImageProcessor(
        size={"shortest_edge": 28 * 28 * 4, "longest_edge": max_pixels},
        patch_size=14, merge_size=2, temporal_patch_size=2,
    )
    video_processor = None
    try:  # the processor class may insist on a video processor
        from transformers import Qwen2VLVideoProcessor
        video_processor = Qwen2VLVideoProcessor(
            size={"shortest_edge": 28 * 28 * 4, "longest_edge": max_pixels})
    except Exception:  # pragma: no cover - depends on torchvision video support
        video_processor = None
    processor = Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                    video_processor=video_processor,
                                    chat_template=CHAT_TEMPLATE)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "memeatlas_tiny.json").write_text(json.dumps({"size": size, "seed": seed}))
    return out
