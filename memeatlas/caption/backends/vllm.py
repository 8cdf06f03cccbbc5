"""vLLM backend: offline `LLM.chat` over whole batches on local GPUs (optional extra).

    pip install 'memeatlas[vllm]'      # vLLM 0.33, CUDA only
    memeatlas caption --backend vllm --model Qwen/Qwen2.5-VL-7B-Instruct --batch-size 64

Structured output is `SamplingParams(structured_outputs=StructuredOutputsParams(json=schema))`
(vLLM >= 0.11; the old guided_* fields are gone). The image budget goes to the
HF processor through `mm_processor_kwargs={"max_pixels": ...}`; one image per
prompt (`limit_mm_per_prompt`). Tensor parallelism splits a model over GPUs;
data parallelism runs replicas.

The request building below (`engine_kwargs`, `sampling_kwargs`,
`build_messages`) is pure Python so it is tested without vLLM or a GPU.
"""

from __future__ import annotations

import time
from typing import Any

from memeatlas.caption.backends._common import (
    DEFAULT_MODEL,
    annotator_name,
    is_local,
    local_dir_hash,
    not_found_message,
)
from memeatlas.caption.backends.base import (
    Backend,
    BackendInfo,
    GenerationRequest,
    GenerationResult,
)
from memeatlas.errors import BackendError, ModelNotFoundError
from memeatlas.provenance import software


def engine_kwargs(model: str, *, revision: str | None = None, dtype: str = "auto",
                  max_pixels: int | None = None, min_pixels: int | None = None,
                  images_per_prompt: int = 1, tensor_parallel_size: int = 1,
                  data_parallel_size: int = 1, max_model_len: int | None = 8192,
                  gpu_memory_utilization: float = 0.9, seed: int = 0,
                  trust_remote_code: bool = False, **extra: Any) -> dict[str, Any]:
    """Keyword arguments for `vllm.LLM(...)`."""
    mm: dict[str, Any] = {}
    if max_pixels:
        mm["max_pixels"] = int(max_pixels)
    if min_pixels:
        mm["min_pixels"] = int(min_pixels)
    kw: dict[str, Any] = {
        "model": model,
        "dtype": dtype,
        "seed": seed,
        "tensor_parallel_size": int(tensor_parallel_size),
        "gpu_memory_utilization": float(gpu_memory_utilization),
        "limit_mm_per_prompt": {"image": int(images_per_prompt), "video": 0},
        "trust_remote_code": trust_remote_code,
    }
    if data_parallel_size and int(data_parallel_size) > 1:
        kw["data_parallel_size"] = int(data_parallel_size)
    if revision:
        kw["revision"] = revision
    if max_model_len:
        kw["max_model_len"] = int(max_model_len)
    if mm:
        kw["mm_processor_kwargs"] = mm
    kw.update(extra)
    return kw


def sampling_kwargs(req: GenerationRequest, *, temperature: float = 0.0, top_p: float = 1.0,
                    seed: int | None = 0) -> dict[str, Any]:
    """Keyword arguments for `vllm.SamplingParams` (the schema under key `json_schema`,
    turned into `structured_outputs=StructuredOutputsParams(json=...)` by `to_sampling_params`)."""
    kw: dict[str, Any] = {
        "max_tokens": int(req.max_new_tokens),
        "temperature": float(temperature if req.temperature is None else req.temperature),
        "top_p": float(top_p),
    }
    s = seed if req.seed is None else req.seed
    if s is not None:
        kw["seed"] = int(s)
    if req.json_schema:
        kw["json_schema"] = req.json_schema
    return kw


def to_sampling_params(kw: dict[str, Any]):
    """`vllm.SamplingParams` from `sampling_kwargs` output (imports vLLM)."""
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    kw = dict(kw)
    schema = kw.pop("json_schema", None)
    if schema is not None:
        kw["structured_outputs"] = StructuredOutputsParams(json=schema)
    return SamplingParams(**kw)


def build_messages(req: GenerationRequest) -> list[dict[str, Any]]:
    """The chat conversation for `LLM.chat` (PIL images passed as `image_pil` parts)."""
    content: list[dict[str, Any]] = []
    if req.image is not None:
        content.append({"type": "image_pil", "image_pil": req.image})
    content.append({"type": "text", "text": req.prompt})
    return [{"role": "user", "content": content}]


def _check_available() -> None:
    try:
        import vllm  # noqa: F401
    except ImportError:
        raise BackendError(
            "the vllm backend needs vLLM (CUDA only): pip install 'memeatlas[vllm]'; on a machine "
            "without an NVIDIA GPU use --backend transformers, or --backend openai against a "
            "`vllm serve` running elsewhere") from None
    import torch

    if not torch.cuda.is_available():
        raise BackendError("the vllm backend needs a CUDA GPU and torch sees none; use "
                           "--backend transformers (CPU) or --backend openai")


class VLLMBackend(Backend):
    """Offline vLLM engine (see module docstring). Options: see `engine_kwargs`, plus
    temperature, top_p."""

    name = "vllm"
    default_model = DEFAULT_MODEL

    def __init__(self, model: str | None = None, *, revision: str | None = None,
                 dtype: str = "auto", max_pixels: int | None = None,
                 min_pixels: int | None = None, tensor_parallel_size: int = 1,
                 data_parallel_size: int = 1, max_model_len: int | None = 8192,
                 gpu_memory_utilization: float = 0.9, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int = 0, trust_remote_code: bool = False,
                 enforce_eager: bool = False) -> None:
        _check_available()
        from vllm import LLM

        self.model_id = model or DEFAULT_MODEL
        self.temperature, self.top_p, self.seed = float(temperature), float(top_p), seed
        self.engine_kwargs = engine_kwargs(
            self.model_id, revision=revision, dtype=dtype, max_pixels=max_pixels,
            min_pixels=min_pixels, tensor_parallel_size=tensor_parallel_size,
            data_parallel_size=data_parallel_size, max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization, seed=seed,
            trust_remote_code=trust_remote_code, enforce_eager=enforce_eager)
        try:
            self.llm = LLM(**self.engine_kwargs)
        except OSError as exc:
            raise ModelNotFoundError(not_found_message(self.model_id, str(exc)[:200])) from None
        if is_local(self.model_id):
            self.revision = "local-" + local_dir_hash(self.model_id)
        else:
            self.revision = revision or getattr(
                getattr(self.llm.llm_engine, "model_config", None), "revision", None) or "unknown"

    @property
    def info(self) -> BackendInfo:
        cfg = {k: v for k, v in self.engine_kwargs.items() if k != "model"}
        return BackendInfo(backend=self.name, model=self.model_id, revision=self.revision,
                           annotator=annotator_name(self.model_id, self.revision), config=cfg,
                           software=software("vllm", "torch", "transformers"))

    @property
    def sampling(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "seed": self.seed,
                "constrained": "vllm structured_outputs"}

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """One `LLM.chat` call for the whole batch (vLLM schedules it continuously)."""
        t0 = time.perf_counter()
        params = [to_sampling_params(sampling_kwargs(r, temperature=self.temperature,
                                                     top_p=self.top_p, seed=self.seed))
                  for r in requests]
        try:
            outs = self.llm.chat([build_messages(r) for r in requests], sampling_params=params,
                                 use_tqdm=False)
        except Exception as exc:
            ms = (time.perf_counter() - t0) * 1000
            return [GenerationResult("", False, latency_ms=ms, error=f"vllm chat failed: {exc}")
                    for _ in requests]
        ms = (time.perf_counter() - t0) * 1000
        results = []
        for o in outs:
            c = o.outputs[0]
            results.append(GenerationResult(
                text=c.text, finished=c.finish_reason == "stop",
                tokens_in=len(o.prompt_token_ids or []), tokens_out=len(c.token_ids),
                latency_ms=ms))
        return results

    def close(self) -> None:
        self.llm = None
