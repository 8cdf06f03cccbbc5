"""Image encoders: CLIP / SigLIP through transformers `get_image_features`, a
sentence-transformers image model, a torchvision CNN (`torchvision:NAME`, see
`memeatlas.embed.torchvision_models`), or the model-free `pixels` baseline. Images arrive already preprocessed by
`memeatlas.imaging.load_image` (the pixels the captioner saw); the model's own processor
then resizes and normalises them to its input size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from memeatlas.embed.config import model_load_error
from memeatlas.errors import BackendError, ModelNotFoundError

BACKENDS = ("auto", "transformers", "sentence-transformers", "torchvision", "pixels")

# The model-free baseline: "tiny image" features (Torralba, Fergus & Freeman 2008), i.e. the
# image shrunk to PIXELS_SIDE x PIXELS_SIDE RGB by area averaging, centred and L2-normalised.
# It sees colour and layout only, which is what a pixel-space clustering should be compared on,
# and it needs no download, so the offline demo can contrast text and image clusterings.
PIXELS_MODEL = "pixels"
PIXELS_SIDE = 16


def resolve_image_model(model: str) -> tuple[str, str]:
    """(what to load, stable name to record): directories become absolute paths, ids stay."""
    if model.strip().lower() == "efficientnet-lite0":
        return "efficientnet-lite0", "efficientnet-lite0"
    if model.lower().startswith("torchvision:"):
        from memeatlas.embed import torchvision_models as tv

        name, weights = tv.parse(model)
        canonical = f"torchvision:{name}" + (f":{weights}" if weights else "")
        return canonical, canonical
    p = Path(model).expanduser()
    if p.exists():
        return str(p.resolve()), str(p.resolve())
    return model, model


def model_short_name(model: str) -> str:
    """`openai/clip-vit-base-patch32` → `clip-vit-base-patch32`; a directory → its name;
    `torchvision:mobilenet_v2` → `mobilenet_v2`."""
    if model.lower().startswith("torchvision:") or model.lower() == "efficientnet-lite0":
        from memeatlas.embed import torchvision_models as tv

        return tv.short_name(model)
    name = model.rstrip("/\\").replace("\\", "/").split("/")[-1]
    return name.lower() or "model"


def pick_backend(backend: str, load_path: str) -> str:
    """`auto` → sentence-transformers for ST models (modules.json / `sentence-transformers/` ids)."""
    if backend not in BACKENDS:
        raise BackendError(f"unknown image backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    if load_path == PIXELS_MODEL:
        return "pixels"
    if load_path.lower().startswith("torchvision:") or load_path == "efficientnet-lite0":
        return "torchvision"
    if ((Path(load_path) / "modules.json").exists()
            or load_path.startswith(("sentence-transformers/", "clip-ViT-"))):
        return "sentence-transformers"
    return "transformers"


def _device(device: str | None) -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _plan(model: str, load_path: str) -> bool:
    """local_files_only for the load; fails at once when the model cannot be had (memeatlas.hub)."""
    from memeatlas.hub import plan_load

    local_only, problem = plan_load(load_path)
    if problem:
        raise model_load_error("image", model, OSError(problem))
    return local_only


class ImageEncoder:
    """A loaded image model that turns RGB PIL images into L2-normalised float32 rows."""

    def __init__(self, model: str, *, backend: str = "auto", device: str | None = None) -> None:
        self.load_path, self.name = resolve_image_model(model)
        self.backend = pick_backend(backend, self.load_path)
        if self.backend == "pixels":
            self.device = "cpu"
        else:
            self.device = _device(device)
        if self.backend == "sentence-transformers":
            self._load_st(model)
        elif self.backend == "transformers":
            self._load_transformers(model)
        elif self.backend == "torchvision":
            self._load_torchvision()
        self.weights_info: dict[str, Any] | None = getattr(self, "weights_info", None)
        self.dim = int(self._probe_dim())

    # --- loading ---------------------------------------------------------------------------
    def _load_st(self, model: str) -> None:
        from sentence_transformers import SentenceTransformer

        local_only = _plan(model, self.load_path)
        try:
            self.st = SentenceTransformer(self.load_path, device=self.device,
                                          local_files_only=local_only)
        except (OSError, ValueError) as exc:
            raise model_load_error("image", model, exc) from None

    def _load_transformers(self, model: str) -> None:
        import torch
        from transformers import AutoImageProcessor, AutoModel

        local_only = _plan(model, self.load_path)
        try:
            self.processor = AutoImageProcessor.from_pretrained(self.load_path,
                                                                local_files_only=local_only)
            self.model = AutoModel.from_pretrained(self.load_path, dtype=torch.float32,
                                                   local_files_only=local_only)
        except (OSError, ValueError) as exc:
            raise model_load_error("image", model, exc) from None
        if not hasattr(self.model, "get_image_features"):
            raise ModelNotFoundError(
                f"model {model!r} ({type(self.model).__name__}) has no get_image_features; "
                f"use a CLIP / SigLIP model, or a sentence-transformers image model")
        self.model.eval().to(self.device)

    def _load_torchvision(self) -> None:
        from memeatlas.embed import torchvision_models as tv

        if not tv.is_cnn_model(self.load_path):
            raise BackendError(f"the torchvision backend needs --model torchvision:NAME or "
                               f"efficientnet-lite0, got {self.load_path!r}")
        cnn = tv.load(self.load_path, device=self.device)
        self.cnn, self.transform, self.weights_info = cnn.model, cnn.transform, cnn.provenance

    def _probe_dim(self) -> int:
        from PIL import Image

        return self.encode([Image.new("RGB", (64, 64), (255, 255, 255))]).shape[1]

    # --- encoding --------------------------------------------------------------------------
    def encode(self, images: list, *, batch_size: int = 32) -> np.ndarray:
        """[len(images), dim] float32, rows L2-normalised."""
        if not images:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        if self.backend == "pixels":
            return _tiny_images(images)
        if self.backend == "sentence-transformers":
            out = self.st.encode(images, batch_size=batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
            return np.asarray(out, dtype=np.float32).reshape(len(images), -1)
        if self.backend == "torchvision":
            return np.concatenate([self._encode_tv(images[i:i + batch_size])
                                   for i in range(0, len(images), batch_size)])
        return np.concatenate([self._encode_tf(images[i:i + batch_size])
                               for i in range(0, len(images), batch_size)])

    def _encode_tf(self, images: list) -> np.ndarray:
        import torch

        inputs = self.processor(images=images, return_tensors="pt")
        inputs = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in inputs.items()}
        with torch.inference_mode():
            out = self.model.get_image_features(**inputs)
        # transformers 5 returns a BaseModelOutputWithPooling whose pooler_output is the
        # projected embedding; older versions returned the tensor itself.
        feats = out if isinstance(out, torch.Tensor) else (
            getattr(out, "pooler_output", None) if getattr(out, "pooler_output", None) is not None
            else out[0])
        if feats.ndim == 3:  # no pooled output: mean over tokens
            feats = feats.mean(dim=1)
        feats = torch.nn.functional.normalize(feats.float(), p=2, dim=-1)
        return feats.cpu().numpy().astype(np.float32, copy=False)

    def preprocess(self, image) -> Any:
        """The model's own input transform of one PIL image (a tensor for torchvision models,
        the image itself otherwise); cheap to run on loader threads ahead of `encode`."""
        if self.backend == "torchvision":
            return self.transform(image)
        return image

    def _encode_tv(self, images: list) -> np.ndarray:
        import torch

        batch = torch.stack([im if isinstance(im, torch.Tensor) else self.transform(im)
                             for im in images]).to(self.device)
        with torch.inference_mode():
            feats = self.cnn(batch)
        feats = torch.nn.functional.normalize(feats.flatten(1).float(), p=2, dim=-1)
        return feats.cpu().numpy().astype(np.float32, copy=False)

    def describe(self) -> dict[str, Any]:
        return {"model": self.name, "backend": self.backend, "dim": getattr(self, "dim", None),
                "device": self.device}


def _tiny_images(images: list) -> np.ndarray:
    """The `pixels` baseline: PIXELS_SIDE² RGB values per image, centred, L2-normalised."""
    from PIL import Image

    side = (PIXELS_SIDE, PIXELS_SIDE)
    rows = np.stack([np.asarray(im.convert("RGB").resize(side, Image.Resampling.BOX),
                                dtype=np.float32).reshape(-1) / 255.0 for im in images])
    rows -= rows.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows / np.maximum(norms, 1e-12)).astype(np.float32)
