"""Near-duplicate groups on generated and real images: recall, precision, kinds, incremental."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from memeatlas.cli import app
from memeatlas.embed import ImageEmbedConfig, embed_image
from memeatlas.images import NearDupConfig, group_near_duplicates
from memeatlas.images.hashindex import HashIndex, hamming
from memeatlas.ingest import ingest_paths
from memeatlas.testing.shared_data import require_shared
from tests.helpers_images import pair_scores, picture, textured_picture, write_variant_corpus

HASH_VARIANTS = ("jpeg30", "half", "watermark")


def _ingest(store, folder: Path, truth: dict[Path, str]) -> dict[str, str]:
    ingest_paths(store, [folder])
    by_path = {Path(p).resolve(): m for m, p in store.fetchall("SELECT meme_id, path FROM memes")}
    return {by_path[p.resolve()]: name for p, name in truth.items()}


def _groups(store, run_id: str, column: str = "group_id") -> dict[str, str]:
    return dict(store.fetchall(f"SELECT meme_id, {column} FROM dup_members WHERE run_id = ?",
                               [run_id]))


def test_hash_index_is_exact():
    import numpy as np

    rng = np.random.default_rng(0)
    stored = rng.integers(0, 2**63, 3000, dtype=np.uint64)
    q = stored[:50] ^ np.uint64(0b1011)  # 3 bits away from the first 50
    idx = HashIndex(stored[:1000])
    idx.add(stored[1000:])
    r, p, d = idx.query(q, 3)
    got = set(zip(r.tolist(), p.tolist(), strict=False))
    want = {(i, j) for i in range(50) for j in range(3000)
            if int(hamming(q[i], stored[j])) <= 3}
    assert got == want and {(i, i) for i in range(50)} <= got
    assert (d <= 3).all()
    # all-against-all with self_offset: each pair once, never a hash with itself
    many = np.concatenate([stored, stored[:300] ^ np.uint64(1 << 40)])  # 3000 + 300
    r, p, _ = HashIndex(many, block=64).query(many[1000:], 2, self_offset=1000)
    pairs = {tuple(sorted((1000 + i, j))) for i, j in zip(r.tolist(), p.tolist(), strict=False)}
    assert len(pairs) == len(r) and all(1000 + i != j for i, j in zip(r.tolist(), p.tolist(), strict=False))
    assert pairs == {(i, 3000 + i) for i in range(300)}  # only the planted ones are this close


def test_generated_variants_group_by_hash_incrementally(store, tmp_path):
    originals = {f"pic{i}": picture(i) for i in range(8)}
    truth = _ingest(store, tmp_path / "a", write_variant_corpus(
        tmp_path / "a", dict(list(originals.items())[:6]), HASH_VARIANTS))
    s = group_near_duplicates(store, NearDupConfig(space="none"))
    assert s.n_new == 24 and s.n_memes == 24
    recall, precision = pair_scores(_groups(store, s.run_id), truth)
    assert (recall, precision) == (1.0, 1.0)
    assert s.n_groups == 6 and set(s.kinds) == {"same_image"}  # no text: decided by hash

    again = group_near_duplicates(store, NearDupConfig(space="none"))
    assert (again.run_id, again.n_new, again.n_pairs) == (s.run_id, 0, s.n_pairs)

    # two more pictures with their variants: only the 8 new memes are compared
    truth.update(_ingest(store, tmp_path / "b", write_variant_corpus(
        tmp_path / "b", dict(list(originals.items())[6:]), HASH_VARIANTS)))
    more = group_near_duplicates(store, NearDupConfig(space="none"))
    assert more.n_new == 8 and more.n_memes == 32 and more.n_groups == 8
    assert pair_scores(_groups(store, more.run_id), truth) == (1.0, 1.0)
    rows = store.fetchall("SELECT kind, n_memes, n_images FROM near_duplicate_groups "
                          "WHERE run_id = ?", [more.run_id])
    assert sorted(rows) == [("same_image", 4, 1)] * 8


def test_text_tells_same_image_from_same_template(store, tmp_path):
    truth = _ingest(store, tmp_path, write_variant_corpus(
        tmp_path, {"pic": picture(3)}, ("jpeg30", "half", "watermark")))
    ids = sorted(truth)
    texts = {ids[0]: "ONE DOES NOT SIMPLY", ids[1]: "one does not simply.",
             ids[2]: "WALK INTO MORDOR", ids[3]: "walk into mordor!"}
    for m, t in texts.items():
        store.execute("INSERT INTO annotations (meme_id, annotator, prompt_hash, schema_hash, "
                      "ocr_text) VALUES (?, 'ocr:test', '', '', ?)", [m, t])
    s = group_near_duplicates(store, NearDupConfig(space="none"))
    assert s.n_groups == 1 and s.kinds == {"same_image": 2, "same_template": 4}
    image_groups = _groups(store, s.run_id, "image_group_id")
    assert image_groups[ids[0]] == image_groups[ids[1]] != image_groups[ids[2]]
    assert image_groups[ids[2]] == image_groups[ids[3]]
    (kind, n_images), = store.fetchall("SELECT kind, n_images FROM near_duplicate_groups")
    assert (kind, n_images) == ("same_template", 2)


def test_cnn_space_catches_crops_and_caption_bars(store, tmp_path):
    originals = {f"pic{i}": picture(10 + i) for i in range(4)}
    truth = _ingest(store, tmp_path, write_variant_corpus(tmp_path, originals))
    hash_only = group_near_duplicates(store, NearDupConfig(space="none"))
    r_hash, p_hash = pair_scores(_groups(store, hash_only.run_id), truth)
    embed_image(store, ImageEmbedConfig(model="torchvision:mobilenet_v2"))
    both = group_near_duplicates(store, NearDupConfig())  # auto: image:mobilenet_v2
    assert both.space == "image:mobilenet_v2" and both.run_id != hash_only.run_id
    r_both, p_both = pair_scores(_groups(store, both.run_id), truth)
    assert p_hash == 1.0 and p_both == 1.0
    assert r_both > r_hash and r_both >= 0.9, (r_hash, r_both)


def test_cli_near_dups_and_status(tmp_path):
    db = tmp_path / "c.duckdb"
    folder = tmp_path / "imgs"
    write_variant_corpus(folder, {"a": picture(1), "b": picture(2)}, HASH_VARIANTS)
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(folder), "--db", str(db)]).exit_code == 0
    r = runner.invoke(app, ["images", "near-dups", "--db", str(db), "--json"])
    assert r.exit_code == 0, r.output
    assert '"n_groups": 2' in r.stdout
    st = runner.invoke(app, ["status", "--db", str(db), "--format", "csv"])
    assert "near-duplicate groups" in st.stdout
    bad = runner.invoke(app, ["images", "near-dups", "--db", str(db), "--space", "image:nope"])
    assert bad.exit_code == 1 and "no image space 'image:nope'" in bad.output


@pytest.mark.slow
def test_real_template_variants_recall_precision(store, tmp_path):
    """Variants of 10 real ImgFlip templates: pHash alone, then pHash + MobileNetV2."""
    gallery = require_shared("template-images", "imgflip")
    from PIL import Image

    files = sorted(gallery.iterdir())[::10]
    originals = {f.stem: Image.open(f).convert("RGB") for f in files}
    truth = _ingest(store, tmp_path, write_variant_corpus(tmp_path, originals))
    hash_only = group_near_duplicates(store, NearDupConfig(space="none"))
    r_hash, p_hash = pair_scores(_groups(store, hash_only.run_id), truth)
    embed_image(store, ImageEmbedConfig(model="torchvision:mobilenet_v2"))
    both = group_near_duplicates(store, NearDupConfig())
    r_both, p_both = pair_scores(_groups(store, both.run_id), truth)
    print(f"hash only: recall {r_hash:.3f} precision {p_hash:.3f}; "
          f"+mobilenet: recall {r_both:.3f} precision {p_both:.3f}")
    assert p_hash >= 0.99 and p_both >= 0.97
    # pHash misses crops and caption bars (about half the variant pairs); the CNN adds them
    assert r_hash >= 0.4 and r_both >= 0.95


def test_look_alike_pictures_do_not_chain_but_variants_group(store, tmp_path):
    """Planted: four distinct pictures whose vectors are all look-alikes (cosine ~0.9, above
    --min-cosine), each with a crop, a caption bar and a JPEG re-encode. Linking on looks
    chained all 16 into one group; verified pairs keep one group per picture."""
    import numpy as np

    from memeatlas.corpus.spaces import prepare_space, write_vectors

    originals = {f"pic{s}": textured_picture(s) for s in (0, 3, 10, 21)}
    truth = _ingest(store, tmp_path, write_variant_corpus(
        tmp_path, originals, ("jpeg30", "crop10", "caption_bar")))
    rng = np.random.default_rng(0)
    base = rng.normal(size=64)
    offset = {name: rng.normal(size=64) * 0.25 for name in originals}
    ids = sorted(truth)
    X = np.array([base + offset[truth[m]] + rng.normal(size=64) * 0.02 for m in ids])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    S = X @ X.T
    assert S.min() > 0.85  # every pair looks alike: the old single-link rule chains them all
    prepare_space(store, space="image:planted", kind="image", model="planted", dim=64,
                  recipe={"planted": True}, params={}, software={})
    write_vectors(store, space="image:planted", model="planted", ids=ids, vectors=X,
                  input_hashes=[None] * len(ids))

    s = group_near_duplicates(store, NearDupConfig(space="image:planted", min_cosine=0.85))
    recall, precision = pair_scores(_groups(store, s.run_id), truth)
    assert precision == 1.0 and recall == 1.0, (recall, precision, s.kinds)
    assert s.n_groups == 4 and s.kinds["similar"] > 0  # look-alikes kept, not grouped
    assert pair_scores(_groups(store, s.run_id, "image_group_id"), truth) == (1.0, 1.0)
    similar = store.fetchall("SELECT inliers, agreement FROM dup_pairs WHERE run_id = ? AND "
                             "kind = 'similar'", [s.run_id])
    assert all(a is None or a < 0.5 for _, a in similar)
