"""Near-duplicate groups: memes that are the same picture (re-encodes, resizes, crops, small
overlays, reposts), told apart from memes that share a template but carry different text.

Two memes are *candidates* when their 64-bit pHashes (stored at ingest) differ in at most
`max_hash_distance` bits, or, with an image space, when their vectors' cosine is at least
`min_cosine` (CNN features survive crops and caption bars, which move a pHash far). Looks
alone do not make a group: distinct photos of one character pass both tests, and linking them
chained whole families of photos into one group. So every candidate pair is verified
geometrically (`memeatlas.images.picture_match`: ORB keypoints under one similarity transform,
then pixel blocks that agree after warping) and only verified pairs link:

- `same_image`: the same picture (agreement >= SAME_PICTURE_AGREEMENT) whose OCR text agrees,
  or is not known for both;
- `same_template`: the same picture carrying other text, or a picture made from it (keypoints
  agree, pixels in part: agreement >= SAME_TEMPLATE_AGREEMENT);
- `similar`: alike to hash or CNN but not one picture; stored, never grouped.

A pair whose images cannot be read (moved files) or carry too little texture to tell (flat
drawings) falls back to its hash: within the radius it links, else it is `similar`. Groups (`group_id`) are the connected components of same_image
and same_template pairs, `image_group_id` those of same_image pairs.

Runs are incremental: a run is keyed by its settings, and a re-run compares only the memes
it has not seen with everything stored (hash radius scan, blocked cosine scan, verification of
the new pairs); the pair kinds and groups are then recomputed from the stored pairs, which is
cheap.
"""

from __future__ import annotations

import difflib
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from memeatlas import progress
from memeatlas.errors import InputError
from memeatlas.images.hashindex import HashIndex, parse_hashes
from memeatlas.provenance import short_hash, software, stable_json, utcnow

# Chosen from data (benchmarks/images.py --calibrate; docs/images.md has the figures): the
# pHash radius and MobileNetV2 cosine that keep precision 1.0 on distinct templates of the two
# template galleries while catching the variants they can.
DEFAULT_MAX_HASH_DISTANCE = 10
DEFAULT_SPACE = "image:mobilenet_v2"
CALIBRATED_MIN_COSINE = {"image:mobilenet_v2": 0.85}
# OCR text of the same picture read twice differs by recognition noise; captions written on
# one template by different people share little: 99 % of two ImgFlip575K captions of one
# template are below 0.7, while 99 % of a caption and a copy with 10 % OCR character errors
# are above it (benchmarks/images.py text).
DEFAULT_MIN_TEXT_SIMILARITY = 0.7
# Geometric verification (benchmarks/images_real.py neardup; docs/images.md has the figures):
# on real pictures, variants of one picture (half-size JPEG, crop + caption bar) keep >= 0.8
# of their textured blocks in agreement; distinct photos that look alike agree at ~0, and only
# frames of one static shot (two Harold photos of one shoot, seagull frames) reach 0.5-0.9.
# A picture redrawn (Y-U-No / Y-U-So: 0.62) is the same template, not the same image; a
# shared caption bar on two distinct pictures stays near 0.3. Inliers only need to define a
# transform; agreement decides.
MIN_INLIERS = 8
SAME_PICTURE_AGREEMENT = 0.8
SAME_TEMPLATE_AGREEMENT = 0.6
HASH_CONFIRM_AGREEMENT = 0.35  # a hash-close pair is one picture unless geometry says no
LINKING_KINDS = ("same_image", "same_template")
# 2: candidates are verified geometrically; unverified ones are `similar` and never grouped
RECIPE_VERSION = 2


@dataclass
class NearDupConfig:
    """Settings of a near-duplicate run (a run is keyed by all but `force` and `block`).

    space: image space whose cosine links memes too; "auto" = `image:mobilenet_v2` when the
      store has it, None/"none" = pHash only.
    min_cosine: None = the calibrated value for `space` (required for other spaces).
    annotator: whose OCR text tells same image from same template; None = each meme's latest
      annotation that has OCR text.
    """

    max_hash_distance: int = DEFAULT_MAX_HASH_DISTANCE
    space: str | None = "auto"
    min_cosine: float | None = None
    min_text_similarity: float = DEFAULT_MIN_TEXT_SIMILARITY
    annotator: str | None = None
    force: bool = False
    block: int = 2048


@dataclass
class NearDupSummary:
    """What a near-duplicate run did."""

    run_id: str
    space: str | None
    max_hash_distance: int
    min_cosine: float | None
    n_memes: int = 0           # memes in the run after this call
    n_new: int = 0             # memes compared for the first time in this call
    n_without_hash: int = 0    # image memes with no pHash (not comparable by hash)
    left_out: dict[str, int] = field(default_factory=dict)  # memes not compared, by reason
    n_pairs: int = 0
    n_groups: int = 0          # groups of two or more
    n_grouped: int = 0         # memes in those groups
    kinds: dict[str, int] = field(default_factory=dict)  # pairs by kind
    n_verified: int = 0        # pairs compared geometrically in this call
    n_unreadable: int = 0      # of them, with an image that could not be read (hash decides)
    seconds: float = 0.0
    search_seconds: float = 0.0
    verify_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _resolve_space(store, cfg: NearDupConfig) -> tuple[str | None, float | None]:
    space = cfg.space
    if space is None or str(space).lower() in ("", "none", "off"):
        return None, None
    if space == "auto":
        has = store.scalar("SELECT count(*) FROM embedding_spaces WHERE space = ?",
                           [DEFAULT_SPACE])
        if not has:
            return None, None
        space = DEFAULT_SPACE
    else:
        kind = store.scalar("SELECT kind FROM embedding_spaces WHERE space = ?", [space])
        if kind != "image":
            images = [r[0] for r in store.fetchall(
                "SELECT space FROM embedding_spaces WHERE kind = 'image' ORDER BY space")]
            have = (f"image spaces here: {', '.join(images)}" if images else
                    "no image space yet; embed one with `memeatlas embed image --model "
                    "torchvision:mobilenet_v2`")
            what = f"--space {space!r} is a {kind} space" if kind else \
                f"no image space {space!r}"
            raise InputError(f"{what}; near-duplicates compare image vectors: {have} "
                             f"(or --space none for pHash only)")
    cos = cfg.min_cosine if cfg.min_cosine is not None else CALIBRATED_MIN_COSINE.get(space)
    if cos is None:
        raise InputError(f"no calibrated --min-cosine for space {space!r} (only for "
                         f"{', '.join(CALIBRATED_MIN_COSINE)}); pass --min-cosine")
    return space, float(cos)


def run_id_for(params: dict[str, Any]) -> str:
    """Deterministic run id of a set of settings, so a re-run extends its run."""
    return "dup-" + short_hash(params, 12)


def _norm_text(text: str | None) -> str:
    return re.sub(r"[^a-z0-9]+", " ", (text or "").lower()).strip()


def text_similarity(a: str, b: str) -> float:
    """0..1 similarity of two normalised texts (difflib ratio; both empty → 1)."""
    if not a and not b:
        return 1.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def _texts(store, annotator: str | None) -> dict[str, str]:
    """meme_id → normalised OCR text of its latest annotation with OCR text."""
    sql = ("SELECT meme_id, ocr_text FROM latest_annotations WHERE ocr_text IS NOT NULL "
           + ("AND annotator = ? " if annotator else "")
           + "QUALIFY row_number() OVER (PARTITION BY meme_id ORDER BY created_at DESC, "
             "annotator) = 1")
    return {m: _norm_text(t) for m, t in store.fetchall(sql, [annotator] if annotator else [])}


def _components(ids: list[str], pairs: list[tuple[str, str]]) -> dict[str, str]:
    """meme_id → smallest meme_id of its connected component (union-find)."""
    parent = {m: m for m in ids}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            if rb < ra:
                ra, rb = rb, ra
            parent[rb] = ra
    return {m: find(m) for m in ids}


def _kind(hd: int | None, text_sim: float | None, inliers: int | None,
          agreement: float | None, max_hd: int, min_text: float) -> str:
    """A pair's kind from its evidence (module docstring); geometry, when it can tell, decides."""
    hash_close = hd is not None and hd <= max_hd
    if agreement is not None:
        aligned = (inliers or 0) >= MIN_INLIERS
        if hash_close:
            # the pHash already says one picture; geometry only has to not contradict it (a
            # watermark or heavy JPEG on a flat picture costs blocks, another picture costs all)
            if not aligned or agreement < HASH_CONFIRM_AGREEMENT:
                return "similar"
        elif not aligned or agreement < SAME_TEMPLATE_AGREEMENT:
            return "similar"
        elif agreement < SAME_PICTURE_AGREEMENT:
            return "same_template"
    elif not hash_close:
        return "similar"  # only the CNN links them and the pictures could not be compared
    if text_sim is not None:
        return "same_image" if text_sim >= min_text else "same_template"
    return "same_image"


def _cosine_pairs(X_new: np.ndarray, X_all: np.ndarray, min_cos: float,
                  block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row in new, row in all, cosine) with cosine >= min_cos, blocked over the stored rows."""
    rs, cs, vs = [], [], []
    for start in range(0, len(X_all), block):
        S = X_new @ X_all[start:start + block].T
        r, c = np.nonzero(S >= min_cos)
        rs.append(r)
        cs.append(c + start)
        vs.append(S[r, c])
    if not rs:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0, np.float32)
    return np.concatenate(rs), np.concatenate(cs), np.concatenate(vs)


def group_near_duplicates(store, config: NearDupConfig | None = None) -> NearDupSummary:
    """Find near-duplicate pairs among the store's image memes and group them (incremental).

    Memes the run has seen keep their pairs; new memes are compared with all stored ones.
    `force` drops the run and compares everything again.
    """
    t0 = time.perf_counter()
    cfg = config or NearDupConfig()
    if not 0 <= cfg.max_hash_distance <= 64:
        raise InputError("--max-hash-distance must be between 0 and 64")
    if not 0 <= cfg.min_text_similarity <= 1:
        raise InputError("--min-text-similarity must be between 0 and 1")
    space, min_cos = _resolve_space(store, cfg)
    params = {"max_hash_distance": int(cfg.max_hash_distance), "space": space,
              "min_cosine": min_cos, "min_text_similarity": float(cfg.min_text_similarity),
              "annotator": cfg.annotator, "hash": "memes.phash (imagehash.phash, 64 bit)",
              "verify": {"method": "ORB + RANSAC similarity transform, 8x8 block agreement",
                         "min_inliers": MIN_INLIERS,
                         "same_picture_agreement": SAME_PICTURE_AGREEMENT,
                         "same_template_agreement": SAME_TEMPLATE_AGREEMENT},
              "recipe_version": RECIPE_VERSION}
    run_id = run_id_for(params)
    summary = NearDupSummary(run_id=run_id, space=space, max_hash_distance=cfg.max_hash_distance,
                             min_cosine=min_cos)
    if cfg.force:
        with store.transaction() as con:
            for table in ("dup_pairs", "dup_members", "dup_runs"):
                con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])

    rows = store.fetchall("SELECT meme_id, phash FROM memes WHERE has_image ORDER BY meme_id")
    seen = {r[0] for r in store.fetchall("SELECT meme_id FROM dup_members WHERE run_id = ?",
                                         [run_id])}
    ids = [m for m, _ in rows]
    summary.n_without_hash = sum(1 for _, h in rows if not h)
    # Memes without an image are never compared: counted, so "compared 0 memes" is explained.
    no_image = store.scalar("SELECT count(*) FROM memes WHERE NOT coalesce(has_image, false)")
    summary.left_out = {"no image": int(no_image)} if no_image else {}
    new_ids = [m for m in ids if m not in seen]
    summary.n_new = len(new_ids)

    t = time.perf_counter()
    # (a, b) → [hash_distance, cosine, inliers, agreement]
    found: dict[tuple[str, str], list[Any]] = {}
    if new_ids:
        _hash_pairs(rows, seen, cfg.max_hash_distance, found)
        if space is not None:
            _space_pairs(store, space, ids, seen, min_cos, cfg.block, found)
    summary.search_seconds = time.perf_counter() - t

    # Pairs from earlier calls keep their measured distances; kinds are recomputed because
    # the text they depend on may have been annotated since.
    hashes = {m: h for m, h in rows}
    _fill_hash_distance(found, hashes)
    t = time.perf_counter()
    summary.n_verified, summary.n_unreadable = _verify_pairs(store, found)
    summary.verify_seconds = time.perf_counter() - t
    old = store.fetchall("SELECT meme_a, meme_b, hash_distance, cosine, inliers, agreement "
                         "FROM dup_pairs WHERE run_id = ?", [run_id])
    present = set(ids)
    for a, b, *measured in old:
        if a in present and b in present:  # a meme deleted from the store leaves its pairs
            found.setdefault((a, b), list(measured))
    texts = _texts(store, cfg.annotator)
    pair_rows = []
    for (a, b), (hd, cos, inl, agr) in found.items():
        sim = (text_similarity(texts[a], texts[b]) if a in texts and b in texts else None)
        pair_rows.append((a, b, hd, cos, sim, inl, agr,
                          _kind(hd, sim, inl, agr, cfg.max_hash_distance,
                                cfg.min_text_similarity)))
    # only verified pairs link: a group never chains through pairs that merely look alike
    group = _components(ids, [(a, b) for a, b, *_, k in pair_rows if k in LINKING_KINDS])
    image_group = _components(ids, [(a, b) for a, b, *_, k in pair_rows if k == "same_image"])
    _write(store, run_id, params, ids, pair_rows, group, image_group)

    summary.n_memes = len(ids)
    summary.n_pairs = len(pair_rows)
    sizes: dict[str, int] = {}
    for g in group.values():
        sizes[g] = sizes.get(g, 0) + 1
    summary.n_groups = sum(1 for n in sizes.values() if n > 1)
    summary.n_grouped = sum(n for n in sizes.values() if n > 1)
    for *_, k in pair_rows:
        summary.kinds[k] = summary.kinds.get(k, 0) + 1
    summary.seconds = time.perf_counter() - t0
    return summary


def _hash_pairs(rows: list[tuple[str, str | None]], seen: set[str], radius: int,
                found: dict[tuple[str, str], list[Any]]) -> None:
    """New-vs-stored and new-vs-new pairs within the hash radius."""
    with_hash = [(m, h) for m, h in rows if h]
    if not with_hash:
        return
    old = [(m, h) for m, h in with_hash if m in seen]
    new = [(m, h) for m, h in with_hash if m not in seen]
    if not new:
        return
    order = old + new  # stored first, then the new ones: the index holds both
    index = HashIndex(parse_hashes(h for _, h in order))
    q = parse_hashes(h for _, h in new)
    n_old = len(old)
    # each new-new pair once (self_offset), every new-old pair
    rows_q, pos, dist = index.query(q, radius, self_offset=n_old)
    for r, p, d in zip(rows_q.tolist(), pos.tolist(), dist.tolist(), strict=True):
        a, b = new[r][0], order[p][0]
        found[(a, b) if a < b else (b, a)] = [int(d), None, None, None]


def _space_pairs(store, space: str, ids: list[str], seen: set[str], min_cos: float,
                 block: int, found: dict[tuple[str, str], list[Any]]) -> None:
    """New-vs-all pairs with cosine >= min_cos in the image space (blocked exact scan)."""
    from memeatlas.corpus.spaces import load_space

    vids, X = load_space(store, space, meme_ids=ids)
    if not vids:
        return
    pos = {m: i for i, m in enumerate(vids)}
    new_rows = np.array([pos[m] for m in vids if m not in seen], dtype=np.int64)
    if not len(new_rows):
        return
    progress.info(f"near-dups: comparing {len(new_rows)} new with {len(vids)} vectors in {space}")
    for start in range(0, len(new_rows), block):
        part = new_rows[start:start + block]
        r, c, v = _cosine_pairs(X[part], X, min_cos, block)
        for i, j, s in zip(part[r].tolist(), c.tolist(), v.tolist(), strict=True):
            if i == j or (vids[j] not in seen and j < i):
                continue  # itself, or a new-new pair already taken from the other side
            a, b = vids[i], vids[j]
            key = (a, b) if a < b else (b, a)
            entry = found.setdefault(key, [None, None, None, None])
            entry[1] = round(float(s), 6)


def _verify_pairs(store, found: dict[tuple[str, str], list[Any]]) -> tuple[int, int]:
    """Inliers and agreement of this call's pairs (in place); (verified, unreadable).

    Each image is read once per call, only memes in a new pair are read at all, and a pair
    with an unreadable image keeps inliers NULL (its hash decides).
    """
    from memeatlas.images.picture_match import compare, features_of_file

    if not found:
        return 0, 0
    need = sorted({m for pair in found for m in pair})
    paths = dict(store.fetchall("SELECT meme_id, path FROM memes WHERE meme_id IN "
                                "(SELECT unnest(?::VARCHAR[]))", [need]))
    progress.info(f"near-dups: verifying {len(found)} candidate pairs of {len(need)} images")
    feats = {m: features_of_file(paths[m]) if paths.get(m) else None for m in need}
    unreadable = 0
    for (a, b), entry in found.items():
        fa, fb = feats.get(a), feats.get(b)
        if fa is None or fb is None:
            unreadable += 1
            continue
        inliers, agreement = compare(fa, fb)
        entry[2], entry[3] = inliers, None if agreement is None else round(agreement, 4)
    return len(found), unreadable


def _fill_hash_distance(found: dict[tuple[str, str], list[Any]],
                        hashes: dict[str, str | None]) -> None:
    """The hash distance of cosine-only pairs too, so every pair says how far its hashes are."""
    for (a, b), entry in found.items():
        if entry[0] is None and hashes.get(a) and hashes.get(b):
            entry[0] = int(bin(int(hashes[a], 16) ^ int(hashes[b], 16)).count("1"))


def _write(store, run_id: str, params: dict[str, Any], ids: list[str], pair_rows: list[tuple],
           group: dict[str, str], image_group: dict[str, str]) -> None:
    """Store the run's members and pairs, writing only rows that are new or changed (an
    incremental call over 100,000 stored memes then rewrites a few thousand rows, not all)."""
    import pyarrow as pa

    gsize: dict[str, int] = {}
    isize: dict[str, int] = {}
    for m in ids:
        gsize[group[m]] = gsize.get(group[m], 0) + 1
        isize[image_group[m]] = isize.get(image_group[m], 0) + 1
    old_members = {m: tuple(rest) for m, *rest in store.fetchall(
        "SELECT meme_id, group_id, image_group_id, group_size, image_group_size "
        "FROM dup_members WHERE run_id = ?", [run_id])}
    members = [(m, group[m], image_group[m], gsize[group[m]], isize[image_group[m]])
               for m in ids]
    members = [r for r in members if old_members.get(r[0]) != r[1:]]
    gone = [m for m in old_members if m not in group]  # memes deleted from the store
    old_pairs = {(a, b): tuple(rest) for a, b, *rest in store.fetchall(
        "SELECT meme_a, meme_b, hash_distance, cosine, text_similarity, inliers, agreement, "
        "kind FROM dup_pairs WHERE run_id = ?", [run_id])}
    pairs = [r for r in pair_rows if old_pairs.get((r[0], r[1])) != tuple(r[2:])]

    def table(rows: list[tuple], names: list[str], types: list) -> pa.Table:
        cols = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
        return pa.table({n: pa.array(list(c), t) for n, c, t in zip(names, cols, types,
                                                                     strict=True)})

    mt = table(members, ["meme_id", "group_id", "image_group_id", "group_size",
                         "image_group_size"],
               [pa.string(), pa.string(), pa.string(), pa.int32(), pa.int32()])
    pt = table(pairs, ["meme_a", "meme_b", "hash_distance", "cosine", "text_similarity",
                       "inliers", "agreement", "kind"],
               [pa.string(), pa.string(), pa.int32(), pa.float64(), pa.float64(), pa.int32(),
                pa.float64(), pa.string()])
    n_groups = sum(1 for n in gsize.values() if n > 1)
    now = utcnow()
    soft = stable_json(software("imagehash", "numpy"))
    with store.registered("_dup_members", mt), store.registered("_dup_pairs", pt), \
            store.transaction() as con:
        if gone:
            con.execute("DELETE FROM dup_members WHERE run_id = ? AND meme_id IN "
                        "(SELECT unnest(?::VARCHAR[]))", [run_id, gone])
            con.execute("DELETE FROM dup_pairs WHERE run_id = ? AND (meme_a IN "
                        "(SELECT unnest($2::VARCHAR[])) OR meme_b IN "
                        "(SELECT unnest($2::VARCHAR[])))".replace("?", "$1"), [run_id, gone])
        if members:
            con.execute("DELETE FROM dup_members WHERE run_id = ? AND meme_id IN "
                        "(SELECT meme_id FROM _dup_members)", [run_id])
            con.execute("INSERT INTO dup_members SELECT ?, meme_id, group_id, image_group_id, "
                        "group_size, image_group_size FROM _dup_members", [run_id])
        if pairs:
            con.execute("DELETE FROM dup_pairs WHERE run_id = ? AND (meme_a, meme_b) IN "
                        "(SELECT (meme_a, meme_b) FROM _dup_pairs)", [run_id])
            con.execute("INSERT INTO dup_pairs (run_id, meme_a, meme_b, hash_distance, cosine, "
                        "text_similarity, inliers, agreement, kind) SELECT ?, meme_a, meme_b, "
                        "hash_distance, cosine, text_similarity, inliers, agreement, kind "
                        "FROM _dup_pairs", [run_id])
        exists = con.execute("SELECT count(*) FROM dup_runs WHERE run_id = ?",
                             [run_id]).fetchone()[0]
        if exists:
            con.execute("UPDATE dup_runs SET n_memes = ?, n_groups = ?, n_pairs = ?, "
                        "updated_at = ?, software = ? WHERE run_id = ?",
                        [len(ids), n_groups, len(pair_rows), now, soft, run_id])
        else:
            con.execute("INSERT INTO dup_runs (run_id, params, software, n_memes, n_groups, "
                        "n_pairs, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [run_id, stable_json(params), soft, len(ids), n_groups,
                         len(pair_rows), now, now])
