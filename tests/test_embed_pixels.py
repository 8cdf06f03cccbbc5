"""The model-free `pixels` image baseline: tiny-image features that need no download."""

from __future__ import annotations

import numpy as np
from PIL import Image

from memeatlas.embed import ImageEmbedConfig, embed_image, load_space
from memeatlas.ingest import ingest_paths


def test_pixels_space_separates_colours_and_skips_imageless(store, tmp_path):
    for i, colour in enumerate([(250, 20, 20), (240, 30, 25), (20, 20, 250), (25, 30, 240)]):
        img = Image.new("RGB", (120, 90), colour)
        img.paste((255, 255, 255), (0, 0, 60, 45))  # same layout, different colour
        img.save(tmp_path / f"m{i}.png")
    ingest_paths(store, [tmp_path])
    store.execute("INSERT INTO memes (meme_id, source, has_image) VALUES ('noimg', 'x', false)")
    s = embed_image(store, ImageEmbedConfig(model="pixels"))
    assert s.space == "image:pixels" and s.embedded == 4
    ids, x = load_space(store, "image:pixels")
    assert x.shape == (4, 768) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    paths = dict(store.fetchall("SELECT meme_id, path FROM memes WHERE has_image"))
    order = [paths[i].rsplit("/", 1)[-1] for i in ids]
    sim = x @ x.T
    red = [order.index("m0.png"), order.index("m1.png")]
    blue = [order.index("m2.png"), order.index("m3.png")]
    assert sim[red[0], red[1]] > sim[red[0], blue[0]]
    assert sim[blue[0], blue[1]] > sim[blue[0], red[1]]
    again = embed_image(store, ImageEmbedConfig(model="pixels"))
    assert again.embedded == 0
