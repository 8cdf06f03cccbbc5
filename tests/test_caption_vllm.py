"""vLLM backend: request building without vLLM; a real run only where vLLM and a GPU exist."""

from __future__ import annotations

import importlib.util

import pytest
from PIL import Image

from memeatlas.caption.backends import GenerationRequest
from memeatlas.caption.backends.vllm import build_messages, engine_kwargs, sampling_kwargs
from memeatlas.caption.schema import core_json_schema


def _has_vllm_gpu() -> bool:
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


def test_engine_kwargs():
    kw = engine_kwargs("Qwen/Qwen2.5-VL-7B-Instruct", max_pixels=401408, tensor_parallel_size=2,
                       data_parallel_size=2, revision="abc", max_model_len=4096)
    assert kw["model"] == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert kw["mm_processor_kwargs"] == {"max_pixels": 401408}
    assert kw["limit_mm_per_prompt"] == {"image": 1, "video": 0}
    assert kw["tensor_parallel_size"] == 2 and kw["data_parallel_size"] == 2
    assert kw["revision"] == "abc" and kw["max_model_len"] == 4096
    single = engine_kwargs("m")
    assert "data_parallel_size" not in single and "mm_processor_kwargs" not in single
    assert engine_kwargs("m", enforce_eager=True)["enforce_eager"] is True


def test_sampling_kwargs_and_messages():
    schema = core_json_schema()
    img = Image.new("RGB", (8, 8))
    req = GenerationRequest("describe", img, schema, 300)
    kw = sampling_kwargs(req, temperature=0.0, top_p=0.95, seed=3)
    assert kw == {"max_tokens": 300, "temperature": 0.0, "top_p": 0.95, "seed": 3,
                  "json_schema": schema}
    retry = sampling_kwargs(GenerationRequest("d", img, None, 10, temperature=0.7, seed=2))
    assert retry["temperature"] == 0.7 and retry["seed"] == 2 and "json_schema" not in retry
    msgs = build_messages(req)
    assert msgs[0]["role"] == "user"
    assert msgs[0]["content"][0] == {"type": "image_pil", "image_pil": img}
    assert msgs[0]["content"][1] == {"type": "text", "text": "describe"}
    text_only = build_messages(GenerationRequest("name it", None, None, 5))
    assert text_only[0]["content"] == [{"type": "text", "text": "name it"}]


def test_missing_vllm_is_a_clear_error():
    if _has_vllm_gpu():
        pytest.skip("vllm and a GPU are present")
    from memeatlas.caption.backends import create
    from memeatlas.errors import BackendError

    with pytest.raises(BackendError, match="vllm|CUDA"):
        create("vllm", model="x")


@pytest.mark.gpu
@pytest.mark.skipif(not _has_vllm_gpu(), reason="needs vllm and a CUDA GPU")
def test_vllm_generates_schema_valid_json(tmp_path):
    import json

    from memeatlas.caption.backends import create
    from memeatlas.caption.schema import Validator
    from memeatlas.testing.tiny_qwen import build_tiny_qwen25vl

    model = build_tiny_qwen25vl(tmp_path / "tiny")
    b = create("vllm", model=str(model), max_model_len=2048, gpu_memory_utilization=0.3,
               enforce_eager=True)
    schema = core_json_schema()
    img = Image.new("RGB", (224, 224), "blue")
    res = b.generate([GenerationRequest("describe", img, schema, 400),
                      GenerationRequest("name this", None, None, 8)])
    assert len(res) == 2
    if res[0].finished:
        Validator(schema)(res[0].text)
    assert res[1].tokens_out > 0
    json.dumps(b.info.config)
