"""A tiny random CLIP built offline from a config, for tests and benchmarks.

The tokenizer is a byte-level BPE with no merges (every byte its own token, plus `</w>`
word-final forms), so nothing is downloaded; the processor and model save to one directory
that `AutoModel` / `AutoImageProcessor` / `AutoProcessor` reload from like any hub model.
"""

from __future__ import annotations

from pathlib import Path


def _byte_vocab() -> dict[str, int]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    chars = list(bytes_to_unicode().values())
    for c in chars:
        vocab.setdefault(c, len(vocab))
    for c in chars:
        vocab.setdefault(c + "</w>", len(vocab))
    return vocab


def build_tiny_clip(out_dir: str | Path, *, image_size: int = 32, projection_dim: int = 16,
                    seed: int = 0) -> Path:
    """Write a tiny random CLIP (model + processor + tokenizer) to `out_dir` and return it.

    Image features are `projection_dim`-dimensional (default 16). Builds in about a second.
    """
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab = _byte_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 37,
                     "num_hidden_layers": 2, "num_attention_heads": 2,
                     "max_position_embeddings": 77, "bos_token_id": 0, "eos_token_id": 1,
                     "pad_token_id": 1},
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_size": image_size, "patch_size": 8},
        projection_dim=projection_dim,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
