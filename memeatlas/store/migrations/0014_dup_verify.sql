-- Near-duplicate pairs carry their geometric verification (issue 22): pairs that only look
-- alike (kind 'similar') are kept but no longer link groups.
ALTER TABLE dup_pairs ADD COLUMN inliers INTEGER;   -- ORB keypoints matching under one similarity transform (NULL: an image could not be read)
ALTER TABLE dup_pairs ADD COLUMN agreement DOUBLE;  -- share of textured 8x8 blocks whose pixels agree after warping, 0..1
