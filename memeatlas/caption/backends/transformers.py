"""Hugging Face transformers backend: local batched generation with xgrammar-constrained JSON.

Loads any image-text-to-text model (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, ...) by Hub
id or local directory; text-only chat models (AutoModelForCausalLM) load too,
for text-only requests such as naming clusters. Qwen-family images are sized
through qwen-vl-utils (`fetch_image`: multiples of the patch grid within a
pixel budget), as the Qwen model cards do. A JSON Schema in a request becomes
an xgrammar grammar applied as a logits processor (a new one per generate()
call, as xgrammar requires), so even a random-weight model emits valid JSON.
"""

from __future__ import annotations

import json
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
from memeatlas.provenance import software, stable_json

# Compiled grammars per (model revision, vocab size, schema), shared by every backend
# instance in the process: compiling the v1 schema takes seconds.
_GRAMMARS: dict[tuple[str, int, str], Any] = {}


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendError(f"--device {device} asked for, but torch sees no CUDA GPU; use --device cpu")
    return device


def _resolve_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        out = getattr(torch, dtype)
    except AttributeError:
        raise BackendError(f"unknown --dtype {dtype!r}; use auto, float32, bfloat16 or float16") from None
    if not isinstance(out, torch.dtype):
        raise BackendError(f"unknown --dtype {dtype!r}; use auto, float32, bfloat16 or float16")
    return out


class TransformersBackend(Backend):
    """Local generation with transformers (see module docstring).

    Options: device ("auto" | "cpu" | "cuda[:n]"), dtype ("auto" | "float32" |
    "bfloat16" | "float16"), revision (Hub revision), max_pixels / min_pixels
    (image budget handed to qwen-vl-utils), temperature (0 = greedy), top_p,
    seed, attn_implementation (e.g. "sdpa", "flash_attention_2"),
    trust_remote_code, threads (torch CPU threads while generating; default: torch's).
    """

    name = "transformers"
    default_model = DEFAULT_MODEL

    def __init__(self, model: str | None = None, *, device: str = "auto", dtype: str = "auto",
                 revision: str | None = None, max_pixels: int | None = None,
                 min_pixels: int | None = None, temperature: float = 0.0, top_p: float = 1.0,
                 seed: int = 0, attn_implementation: str | None = None,
                 trust_remote_code: bool = False, threads: int | None = None) -> None:
        self.model_id = model or DEFAULT_MODEL
        self.device = _resolve_device(device)
        self.torch_dtype = _resolve_dtype(dtype, self.device)
        self.requested_revision = revision
        self.max_pixels = max_pixels
        self.min_pixels = min_pixels
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.seed = int(seed)
        self.attn_implementation = attn_implementation
        self.trust_remote_code = trust_remote_code
        self.threads = int(threads) if threads else None
        self._compiler = None
        # Seconds spent preparing inputs (chat template, image resize, processor) and in
        # model.generate, summed over calls: benchmarks split "model time" with these.
        self.timings = {"prepare": 0.0, "generate": 0.0}
        self.model = None
        self._load_config()

    # -- loading -----------------------------------------------------------------------------
    def _load_config(self) -> None:
        """Config only: enough to name the annotator (so a run with nothing to do skips the
        weights) and to fail early on a model that does not exist."""
        from transformers import AutoConfig

        from memeatlas.hub import plan_load

        # Cache and hub checked once, so an offline machine fails in seconds, not minutes.
        self.local_only, problem = plan_load(self.model_id, self.requested_revision)
        if problem:
            raise ModelNotFoundError(not_found_message(self.model_id, problem))
        kw: dict[str, Any] = {"revision": self.requested_revision,
                              "trust_remote_code": self.trust_remote_code,
                              "local_files_only": self.local_only}
        try:
            config = AutoConfig.from_pretrained(self.model_id, **kw)
        except Exception as exc:  # OSError, hub errors, offline errors, bad JSON
            raise ModelNotFoundError(not_found_message(self.model_id, _first_line(exc))) from None
        self.config = config
        self.model_type = getattr(config, "model_type", "") or ""
        self.vision = hasattr(config, "vision_config")
        if is_local(self.model_id):
            self.revision = "local-" + local_dir_hash(self.model_id)
        else:
            self.revision = (getattr(config, "_commit_hash", None) or self.requested_revision
                             or "unknown")

    def _ensure_loaded(self) -> None:
        """Load weights, processor and tokenizer on first use."""
        if self.model is not None:
            return
        import torch  # noqa: F401  (fail early and clearly if torch is broken)
        from transformers import (
            AutoModelForCausalLM,
            AutoModelForImageTextToText,
            AutoProcessor,
            AutoTokenizer,
        )

        kw: dict[str, Any] = {"revision": self.requested_revision,
                              "trust_remote_code": self.trust_remote_code,
                              "local_files_only": getattr(self, "local_only", False)}
        mkw = dict(kw, dtype=self.torch_dtype)
        if self.attn_implementation:
            mkw["attn_implementation"] = self.attn_implementation
        self.vision = True
        try:
            self.model = AutoModelForImageTextToText.from_pretrained(self.model_id, **mkw)
            self.processor = AutoProcessor.from_pretrained(self.model_id, **kw)
            self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        except ValueError as exc:
            if "Unrecognized configuration class" not in str(exc):
                raise ModelNotFoundError(not_found_message(self.model_id, _first_line(exc))) from None
            # A text-only chat model: fine for text-only requests (cluster names).
            self.vision = False
            try:
                self.model = AutoModelForCausalLM.from_pretrained(self.model_id, **mkw)
                self.tokenizer = AutoTokenizer.from_pretrained(self.model_id, **kw)
            except Exception as exc2:
                raise ModelNotFoundError(
                    not_found_message(self.model_id, _first_line(exc2))) from None
            self.processor = None
        except OSError as exc:
            raise ModelNotFoundError(not_found_message(self.model_id, _first_line(exc))) from None

        self.model.to(self.device)
        self.model.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.eos_ids = self._eos_ids()

    def _eos_ids(self) -> list[int]:
        ids: set[int] = set()
        gen = getattr(self.model, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None) if gen is not None else None
        if isinstance(eos, int):
            ids.add(eos)
        elif isinstance(eos, (list, tuple)):
            ids.update(int(i) for i in eos)
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        return sorted(ids)

    @property
    def info(self) -> BackendInfo:
        return BackendInfo(
            backend=self.name, model=self.model_id, revision=self.revision,
            annotator=annotator_name(self.model_id, self.revision),
            config={"device": self.device, "dtype": str(self.torch_dtype).replace("torch.", ""),
                    "max_pixels": self.max_pixels, "min_pixels": self.min_pixels,
                    "attn_implementation": self.attn_implementation,
                    "model_type": self.model_type, "vision": self.vision,
                    "threads": self.threads},
            software=software("torch", "transformers", "xgrammar", "qwen-vl-utils"),
        )

    @property
    def sampling(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "seed": self.seed,
                "constrained": "xgrammar"}

    # -- grammar -----------------------------------------------------------------------------
    def _grammar(self, schema: dict[str, Any]):
        import xgrammar as xgr

        vocab = int(self.model.get_output_embeddings().weight.shape[0])
        key = (f"{self.model_id}@{self.revision}", vocab, stable_json(schema))
        if key not in _GRAMMARS:
            if self._compiler is None:
                info = xgr.TokenizerInfo.from_huggingface(
                    self.tokenizer, vocab_size=vocab, stop_token_ids=self.eos_ids)
                self._compiler = xgr.GrammarCompiler(info)
            # Not stable_json: it sorts keys, and property order is the order the model writes.
            _GRAMMARS[key] = self._compiler.compile_json_schema(
                json.dumps(schema, ensure_ascii=False), any_whitespace=False)
        return _GRAMMARS[key]

    # -- inputs ------------------------------------------------------------------------------
    def _prepare_image(self, image):
        if not self.model_type.startswith("qwen"):
            return image
        from qwen_vl_utils import fetch_image

        ip = getattr(self.processor, "image_processor", None)
        patch = int(getattr(ip, "patch_size", 14) or 14)
        ele: dict[str, Any] = {"image": image}
        if self.max_pixels:
            ele["max_pixels"] = self.max_pixels
        if self.min_pixels:
            ele["min_pixels"] = self.min_pixels
        return fetch_image(ele, image_patch_size=patch)

    def _chat_text(self, req: GenerationRequest) -> str:
        if self.processor is None:
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": req.prompt}], tokenize=False,
                add_generation_prompt=True)
        content: list[dict[str, Any]] = []
        if req.image is not None:
            content.append({"type": "image"})
        content.append({"type": "text", "text": req.prompt})
        return self.processor.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True)

    # -- generation --------------------------------------------------------------------------
    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Generate for all requests; requests sharing schema and sampling run as one batch."""
        self._ensure_loaded()
        results: list[GenerationResult | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            if r.image is not None and not self.vision:
                results[i] = GenerationResult("", False, error=(
                    f"model {self.model_id} is text-only and cannot read images"))
                continue
            key = (stable_json(r.json_schema) if r.json_schema else "", r.max_new_tokens,
                   r.temperature, r.seed)
            groups.setdefault(key, []).append(i)
        for idx in groups.values():
            for i, res in zip(idx, self._generate_group([requests[i] for i in idx]), strict=True):
                results[i] = res
        return [r for r in results if r is not None]

    def _generate_group(self, reqs: list[GenerationRequest]) -> list[GenerationResult]:
        import torch

        t0 = time.perf_counter()
        texts = [self._chat_text(r) for r in reqs]
        images = [self._prepare_image(r.image) for r in reqs if r.image is not None]
        if self.processor is not None:
            enc = self.processor(text=texts, images=images or None, return_tensors="pt",
                                 padding=True)
        else:
            enc = self.tokenizer(texts, return_tensors="pt", padding=True)
        enc = enc.to(self.device)
        t_prep = time.perf_counter()
        self.timings["prepare"] += t_prep - t0
        first = reqs[0]
        temperature = self.temperature if first.temperature is None else first.temperature
        seed = self.seed if first.seed is None else first.seed
        gen_kw: dict[str, Any] = {
            "max_new_tokens": first.max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.eos_ids,
        }
        if temperature and temperature > 0:
            gen_kw.update(do_sample=True, temperature=temperature, top_p=self.top_p, top_k=None)
            torch.manual_seed(seed)
        else:
            gen_kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if first.json_schema:
            import xgrammar as xgr

            gen_kw["logits_processor"] = [xgr.contrib.hf.LogitsProcessor(
                self._grammar(first.json_schema))]
        prev_threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                out = self.model.generate(**enc, **gen_kw)
        except Exception as exc:  # a broken batch must not stop the run
            ms = (time.perf_counter() - t0) * 1000
            return [GenerationResult("", False, latency_ms=ms,
                                     error=f"generate failed: {_first_line(exc)}") for _ in reqs]
        finally:
            if self.threads:
                torch.set_num_threads(prev_threads)
        ms = (time.perf_counter() - t0) * 1000
        self.timings["generate"] += time.perf_counter() - t_prep
        n_prompt = enc["input_ids"].shape[1]
        eos = set(self.eos_ids)
        results = []
        for row in range(len(reqs)):
            gen = out[row, n_prompt:].tolist()
            cut = next((k for k, t in enumerate(gen) if t in eos), None)
            finished = cut is not None
            toks = gen[:cut] if finished else gen
            text = self.tokenizer.decode(toks, skip_special_tokens=True)
            results.append(GenerationResult(
                text=text, finished=finished,
                tokens_in=int(enc["attention_mask"][row].sum()),
                tokens_out=len(toks) + (1 if finished else 0), latency_ms=ms))
        return results

    def close(self) -> None:
        self.model = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
