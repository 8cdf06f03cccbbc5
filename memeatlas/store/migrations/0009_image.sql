-- Near-duplicate groups and template matching against a reference gallery (issue 11).

-- One near-duplicate grouping per set of settings: running `images near-dups` again with the
-- same settings extends the same run (new memes compared with the stored ones).
CREATE TABLE dup_runs (
    run_id      VARCHAR PRIMARY KEY,  -- 'dup-' + 12 hex of the settings' hash
    params      JSON NOT NULL,        -- max_hash_distance, space, min_cosine, min_text_similarity, annotator
    software    JSON,
    n_memes     INTEGER,              -- memes compared so far
    n_groups    INTEGER,              -- groups with two or more memes
    n_pairs     INTEGER,              -- near-duplicate pairs found
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
    updated_at  TIMESTAMP
);

-- Every near-duplicate pair found (meme_a < meme_b).
CREATE TABLE dup_pairs (
    run_id          VARCHAR NOT NULL,
    meme_a          VARCHAR NOT NULL,
    meme_b          VARCHAR NOT NULL,
    hash_distance   INTEGER,          -- Hamming distance of the 64-bit pHashes (memes.phash)
    cosine          DOUBLE,           -- cosine in the image space (NULL when none was used)
    text_similarity DOUBLE,           -- of the two memes' OCR text, 0..1 (NULL when not known for both)
    kind            VARCHAR NOT NULL, -- same_image | same_template (image-similar, text different) | similar (text not known, images alike but not hash-close)
    PRIMARY KEY (run_id, meme_a, meme_b)
);

-- Every meme a run compared, with its groups (a meme alone is its own group).
CREATE TABLE dup_members (
    run_id          VARCHAR NOT NULL,
    meme_id         VARCHAR NOT NULL,
    group_id        VARCHAR NOT NULL, -- smallest meme_id of the connected image-similar memes
    image_group_id  VARCHAR NOT NULL, -- smallest meme_id of the memes connected by same_image pairs
    group_size      INTEGER NOT NULL,
    image_group_size INTEGER NOT NULL,
    PRIMARY KEY (run_id, meme_id)
);

-- One row per group of two or more memes.
CREATE VIEW near_duplicate_groups AS
SELECT d.run_id, d.group_id, count(*) AS n_memes,
       count(DISTINCT d.image_group_id) AS n_images,   -- distinct pictures+texts in the group
       CASE WHEN count(DISTINCT d.image_group_id) = 1 THEN 'same_image' ELSE 'same_template' END AS kind,
       list(d.meme_id ORDER BY d.meme_id) AS meme_ids,
       list(m.path ORDER BY d.meme_id) AS paths
FROM dup_members d LEFT JOIN memes m USING (meme_id)
WHERE d.group_size > 1
GROUP BY d.run_id, d.group_id;

-- A gallery matching: which gallery, which model, which threshold.
CREATE TABLE template_runs (
    run_id          VARCHAR PRIMARY KEY,  -- 'tm-' + 12 hex of gallery contents, model and threshold settings
    gallery         VARCHAR NOT NULL,     -- the gallery folder (absolute)
    gallery_hash    VARCHAR NOT NULL,     -- hash over (template, file SHA-256) of every gallery image
    n_templates     INTEGER,
    n_gallery_images INTEGER,
    space           VARCHAR NOT NULL,     -- image space the memes were matched in
    model           VARCHAR NOT NULL,
    threshold       DOUBLE NOT NULL,      -- best score below this: 'unknown'
    calibration     JSON,                 -- how the threshold was chosen (quantile, gallery impostor scores)
    params          JSON,
    software        JSON,
    created_at      TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE template_matches (
    run_id          VARCHAR NOT NULL,
    meme_id         VARCHAR NOT NULL,
    template        VARCHAR NOT NULL,     -- best template, or 'unknown' when score < threshold
    best_template   VARCHAR NOT NULL,     -- best template even below the threshold
    score           DOUBLE NOT NULL,      -- cosine to the best template's closest gallery image
    second_template VARCHAR,
    second_score    DOUBLE,
    created_at      TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (run_id, meme_id)
);

-- Gallery matches next to the VLM's `template` field, with whether they agree (names compared
-- lower-case with punctuation as spaces; one containing the other counts as agreement).
CREATE VIEW meme_templates AS
WITH a AS (
    SELECT meme_id, annotator, template AS vlm_template
    FROM latest_annotations WHERE template IS NOT NULL AND trim(template) <> ''
), t AS (
    SELECT *, trim(regexp_replace(lower(template), '[^a-z0-9]+', ' ', 'g')) AS norm
    FROM template_matches
)
SELECT t.run_id, t.meme_id, t.template, t.best_template, t.score, t.second_template,
       t.second_score, a.annotator, a.vlm_template,
       CASE WHEN a.vlm_template IS NULL OR t.template = 'unknown' THEN NULL
            ELSE t.norm = trim(regexp_replace(lower(a.vlm_template), '[^a-z0-9]+', ' ', 'g'))
              OR contains(t.norm, trim(regexp_replace(lower(a.vlm_template), '[^a-z0-9]+', ' ', 'g')))
              OR contains(trim(regexp_replace(lower(a.vlm_template), '[^a-z0-9]+', ' ', 'g')), t.norm)
       END AS agrees
FROM t LEFT JOIN a USING (meme_id);
