"""Image spaces with a tiny random CLIP built offline, and the vector read API."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from memeatlas.cli import app
from memeatlas.corpus.spaces import prepare_space, write_vectors
from memeatlas.embed import ImageEmbedConfig, embed_image, get_space, load_space
from memeatlas.errors import MismatchError, NotFoundError
from memeatlas.testing.tiny_clip import build_tiny_clip
from tests.helpers_embed import add_image_meme, add_meme, meme_id_for, write_image


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


@pytest.fixture
def image_corpus(store, tmp_path):
    ids = [add_image_meme(store, write_image(tmp_path / f"img{i}.png", i)) for i in range(4)]
    ids.append(add_image_meme(store, write_image(tmp_path / "rgba.png", 7, mode="RGBA")))
    ids.append(add_image_meme(store, write_image(tmp_path / "pal.gif", 8, mode="P")))
    add_meme(store, meme_id_for("no-image"), None, has_image=False)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    bad = add_image_meme(store, broken)
    return store, ids, bad


def test_embeds_images_skips_imageless_and_counts_unreadable(image_corpus, tiny_clip):
    store, ids, bad = image_corpus
    s = embed_image(store, ImageEmbedConfig(model=str(tiny_clip), batch_size=4, commit_every=4))
    assert s.space == "image:tiny-clip" and s.model == str(tiny_clip.resolve())
    assert (s.dim, s.embedded, s.skipped_no_image, s.failed) == (16, 6, 1, 1)
    assert s.failures[0][0] == bad and "cannot decode" in s.failures[0][1]
    got, X = load_space(store, "image:tiny-clip")
    assert got == sorted(ids) and X.shape == (6, 16) and X.dtype == np.float32
    assert np.allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    assert len({tuple(np.round(x, 5)) for x in X}) == 6  # different images, different vectors
    info = get_space(store, "image:tiny-clip")
    assert (info.kind, info.params["backend"], info.params["recipe"]["max_pixels"]) == (
        "image", "transformers", 1024 * 28 * 28)


def test_image_resume_force_and_determinism(image_corpus, tiny_clip):
    store, ids, _ = image_corpus
    cfg = ImageEmbedConfig(model=str(tiny_clip))
    embed_image(store, cfg)
    _, first = load_space(store, "image:tiny-clip")
    again = embed_image(store, cfg)
    assert (again.embedded, again.skipped_existing, again.failed) == (0, 6, 1)
    forced = embed_image(store, ImageEmbedConfig(model=str(tiny_clip), force=True))
    assert forced.embedded == 6
    _, second = load_space(store, "image:tiny-clip")
    assert np.allclose(first, second, atol=1e-6)


def test_image_model_into_text_space_is_refused(image_corpus, tiny_clip):
    store, _, _ = image_corpus
    prepare_space(store, space="shared", kind="text", model="sentence-transformers/x", dim=384,
                  recipe={}, params={}, software={})
    with pytest.raises(MismatchError) as e:
        embed_image(store, ImageEmbedConfig(model=str(tiny_clip), space="shared"))
    assert "sentence-transformers/x" in str(e.value) and str(tiny_clip.resolve()) in str(e.value)


def test_float32_round_trip_is_exact_and_ids_sorted(store):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 7)).astype(np.float32)
    X[0, :3] = [np.float32(1e-38), np.float32(3.4e38), np.float32(-0.0)]
    ids = [meme_id_for(str(i)) for i in range(50)]
    prepare_space(store, space="t", kind="text", model="m", dim=7, recipe={}, params={},
                  software={})
    write_vectors(store, space="t", model="m", ids=ids[:30], vectors=X[:30],
                  input_hashes=["h"] * 30)
    write_vectors(store, space="t", model="m", ids=ids[30:], vectors=X[30:],
                  input_hashes=["h"] * 20)
    got, Y = load_space(store, "t")
    order = np.argsort(ids)
    assert got == sorted(ids)
    assert Y.tobytes() == X[order].tobytes()  # bit-exact
    sub, Z = load_space(store, "t", meme_ids=[ids[3], ids[1]])
    assert sub == sorted([ids[1], ids[3]]) and np.array_equal(Z, X[[1, 3]][np.argsort([ids[1], ids[3]])])
    with pytest.raises(NotFoundError, match="spaces here: t"):
        load_space(store, "nope")


def test_cli_image(image_corpus, tiny_clip, db_path):
    store, _, _ = image_corpus
    store.close()
    r = CliRunner().invoke(app, ["embed", "image", "--db", str(db_path), "--model",
                                 str(tiny_clip), "--space", "image:tiny", "--batch-size", "2"])
    assert r.exit_code == 0, r.output
    assert "embedded" in r.output and "skipped_no_image" in r.output
    r = CliRunner().invoke(app, ["embed", "image", "--db", str(db_path), "--model",
                                 "/nonexistent/model-dir"])
    assert r.exit_code == 1 and "Error:" in r.output and "/nonexistent/model-dir" in r.output


def test_sentence_transformers_backend_matches_transformers(tiny_clip):
    from PIL import Image

    from memeatlas.embed.image import ImageEncoder, pick_backend

    assert pick_backend("auto", str(tiny_clip)) == "transformers"
    assert pick_backend("auto", "sentence-transformers/clip-ViT-B-32") == "sentence-transformers"
    imgs = [Image.new("RGB", (50, 80), (3, 4, 5)), Image.new("RGB", (90, 40), (200, 4, 5))]
    a = ImageEncoder(str(tiny_clip), backend="transformers", device="cpu").encode(imgs)
    b = ImageEncoder(str(tiny_clip), backend="sentence-transformers", device="cpu").encode(imgs)
    assert a.shape == b.shape == (2, 16) and np.allclose(a, b, atol=1e-5)


def test_siglip_through_get_image_features(tmp_path, store):
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    cfg = SiglipConfig(
        text_config={"vocab_size": 64, "hidden_size": 32, "intermediate_size": 37,
                     "num_hidden_layers": 1, "num_attention_heads": 2,
                     "max_position_embeddings": 16, "bos_token_id": 1, "eos_token_id": 2,
                     "pad_token_id": 0},
        vision_config={"hidden_size": 24, "intermediate_size": 37, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8})
    torch.manual_seed(0)
    model_dir = tmp_path / "tiny-siglip"
    SiglipModel(cfg).save_pretrained(model_dir)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(model_dir)
    ids = [add_image_meme(store, write_image(tmp_path / f"s{i}.jpg", i)) for i in range(3)]
    s = embed_image(store, ImageEmbedConfig(model=str(model_dir)))
    assert (s.space, s.dim, s.embedded) == ("image:tiny-siglip", 24, 3)
    got, X = load_space(store, s.space)
    assert got == sorted(ids) and X.shape == (3, 24)


def test_other_pixel_budget_is_refused(image_corpus, tiny_clip):
    store, _, _ = image_corpus
    embed_image(store, ImageEmbedConfig(model=str(tiny_clip), limit=2))
    with pytest.raises(MismatchError, match="max_pixels"):
        embed_image(store, ImageEmbedConfig(model=str(tiny_clip), max_pixels=64 * 64))
