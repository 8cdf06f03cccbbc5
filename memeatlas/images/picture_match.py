"""Is this the same picture? Geometric verification of an image-similar pair.

CNN cosine and pHash say two images *look alike*; distinct photos of one character, or two
frames of one show, look alike too, and linking on looks alone chains them into one group.
This check asks what only the same picture can show: ORB keypoints of the two images that
match under one similarity transform (RANSAC; a crop, resize, re-encode or pasted caption bar
keeps it), and, after warping one image onto the other with that transform, pixel blocks that
agree (so a shared caption bar or logo, which also yields matching keypoints, is not enough:
the picture around it must agree too).

`compare` returns (inliers, agreement): the transform's RANSAC inliers and the share of the
textured 8 × 8 blocks of the overlap whose detail (pixels minus their local mean) correlates
at 0.6 or more; agreement is None
when the images carry too little texture to tell (a flat drawing, a blank card), and then the
caller falls back to other evidence. Thresholds in `memeatlas.images.neardup` (chosen on real
images: benchmarks/images_real.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SIDE = 512            # features on a copy with this longer side (small images upscaled, so a
                      # half-size repost yields the same keypoints); ~10 ms each
N_FEATURES = 1500
RATIO = 0.8           # Lowe's ratio test on Hamming distances
MIN_MATCHES = 8
GRID = 8              # blocks per side for the pixel agreement
BLOCK_CORR = 0.6      # a block agrees at this correlation of its (blurred) pixels
MIN_TEXTURED = 6      # fewer textured blocks in the overlap than this: no verdict (None)
MIN_DETAIL = 3.0      # a block is textured when its detail (see _detail) varies this much


@dataclass
class PictureFeatures:
    """Grey pixels (longer side SIDE) with their ORB keypoints and descriptors."""

    grey: np.ndarray
    points: np.ndarray
    descriptors: np.ndarray | None


def _cv2() -> Any:
    import cv2

    return cv2


def features_of(image) -> PictureFeatures:
    """Features of a PIL image."""
    cv2 = _cv2()
    g = image.convert("L")
    w, h = g.size
    f = SIDE / max(w, h, 1)
    g = g.resize((max(1, round(w * f)), max(1, round(h * f))), 1)  # 1 = LANCZOS
    grey = np.ascontiguousarray(np.asarray(g, dtype=np.uint8))
    orb = cv2.ORB_create(nfeatures=N_FEATURES)
    kp, des = orb.detectAndCompute(grey, None)
    pts = np.float32([k.pt for k in kp]) if kp else np.zeros((0, 2), np.float32)
    return PictureFeatures(grey, pts, des)


def features_of_file(path: str | Path) -> PictureFeatures | None:
    """Features of an image file, or None when it cannot be read (moved, broken)."""
    from memeatlas.imaging import load_image

    try:
        return features_of(load_image(path))
    except Exception:  # an unreadable file leaves the pair to its hash evidence
        return None


def _one_way(a: PictureFeatures, b: PictureFeatures) -> tuple[int, float | None]:
    cv2 = _cv2()
    if (a.descriptors is None or b.descriptors is None or len(a.points) < MIN_MATCHES
            or len(b.points) < MIN_MATCHES):
        return 0, None  # too few keypoints to say anything
    knn = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(a.descriptors, b.descriptors, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < RATIO * m[1].distance]
    if len(good) < MIN_MATCHES:
        return 0, 0.0  # enough keypoints, next to none in common: different pictures
    src = a.points[[m.queryIdx for m in good]]
    dst = b.points[[m.trainIdx for m in good]]
    cv2.setRNGSeed(0)  # RANSAC samples at random: the same pair gets the same verdict
    M, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC,
                                          ransacReprojThreshold=5.0, maxIters=2000,
                                          confidence=0.99)
    if M is None or mask is None:
        return 0, 0.0
    inliers = int(mask.sum())
    scale = float(np.sqrt(abs(np.linalg.det(M[:, :2]))))
    if not 0.2 <= scale <= 5.0:
        return inliers, 0.0
    return inliers, _agreement(a.grey, b.grey, M)


def _agreement(ga: np.ndarray, gb: np.ndarray, M: np.ndarray) -> float | None:
    """Share of textured blocks of b's frame where a (warped by M) correlates with b."""
    cv2 = _cv2()
    hb, wb = gb.shape
    wa = cv2.warpAffine(ga.astype(np.float32), M, (wb, hb), flags=cv2.INTER_LINEAR)
    valid = cv2.warpAffine(np.ones_like(ga, np.float32), M, (wb, hb)) > 0.99
    # detail = pixels minus their neighbourhood's mean: smooth shading and gradients, which
    # correlate between any two pictures lit alike, drop out; edges and texture stay
    da = _detail(wa)
    db = _detail(gb.astype(np.float32))
    agree = total = 0
    for i in range(GRID):
        for j in range(GRID):
            y0, y1 = hb * i // GRID, hb * (i + 1) // GRID
            x0, x1 = wb * j // GRID, wb * (j + 1) // GRID
            v = valid[y0:y1, x0:x1]
            if not v.size or v.mean() < 0.9:
                continue  # outside the overlap (a crop, a caption bar)
            pa, pb = da[y0:y1, x0:x1][v], db[y0:y1, x0:x1][v]
            if pa.std() < MIN_DETAIL and pb.std() < MIN_DETAIL:
                continue  # flat in both: white margins agree whatever the pictures are
            total += 1
            pa, pb = pa - pa.mean(), pb - pb.mean()
            corr = (pa * pb).sum() / np.sqrt((pa * pa).sum() * (pb * pb).sum() + 1e-9)
            agree += bool(corr >= BLOCK_CORR)
    return agree / total if total >= MIN_TEXTURED else None


def _detail(g: np.ndarray) -> np.ndarray:
    """g, lightly blurred (JPEG noise), minus a wide blur of itself (shading)."""
    cv2 = _cv2()
    return cv2.GaussianBlur(g, (0, 0), 1.5) - cv2.GaussianBlur(g, (0, 0), 6.0)


def compare(a: PictureFeatures, b: PictureFeatures) -> tuple[int, float | None]:
    """(inliers, agreement) of the pair, the better of both directions (a crop warps one way);
    agreement None when neither direction could tell."""
    ab = _one_way(a, b)
    if (ab[1] is not None and ab[1] >= 0.8) or (ab[0] == 0 and ab[1] == 0.0):
        return ab  # decided one way: the same picture, or no matches at all (the common case)
    ba = _one_way(b, a)
    told = [r for r in (ab, ba) if r[1] is not None]
    if not told:
        return max(ab[0], ba[0]), None
    return max(told, key=lambda r: (r[1], r[0]))
