-- Memes, where each was seen, ingest errors, and the annotations table that
-- both importers (human corpora) and captioners (VLMs, OCR) write into.

CREATE TABLE memes (
    meme_id    VARCHAR PRIMARY KEY,  -- SHA-256 of the image bytes; for image-less imports, SHA-256 of '<corpus>:<source_id>'
    path       VARCHAR,              -- absolute path of the first file seen with these bytes (NULL without image)
    source     VARCHAR NOT NULL,     -- where it first came from: 'folder', 'manifest', 'memecap', 'jsonl', 'csv'
    source_id  VARCHAR,              -- the source's own id (e.g. MemeCap post_id), so ratings/labels can refer to it
    has_image  BOOLEAN NOT NULL,
    width      INTEGER,
    height     INTEGER,
    format     VARCHAR,              -- PIL format name: JPEG, PNG, WEBP, GIF, BMP, TIFF
    n_frames   INTEGER,
    n_bytes    BIGINT,
    phash      VARCHAR,              -- 64-bit perceptual hash (imagehash.phash), 16 hex digits
    added_at   TIMESTAMP NOT NULL DEFAULT current_timestamp,
    meta       JSON                  -- manifest columns / extra corpus fields, queryable with ->> 
);

CREATE TABLE meme_sources (
    meme_id    VARCHAR NOT NULL,
    source     VARCHAR NOT NULL,
    path       VARCHAR NOT NULL,     -- file path, or '<corpus>:<source_id>' for image-less imports
    source_id  VARCHAR,
    meta       JSON,
    added_at   TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (meme_id, source, path)
);

CREATE TABLE ingest_errors (
    source     VARCHAR NOT NULL,     -- 'folder', 'manifest:<file>', 'import:<file>'
    path       VARCHAR NOT NULL,     -- the file, or '<file>:<line>' for a manifest/import row
    error      VARCHAR NOT NULL,     -- short code: empty_file, truncated, not_an_image, too_many_pixels, unreadable, missing, missing_field, ...
    detail     VARCHAR,              -- readable reason with what to do
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE annotations (
    meme_id      VARCHAR NOT NULL,
    annotator    VARCHAR NOT NULL,   -- '<model id>@<revision>', 'ocr:rapidocr', or 'human:<corpus>'
    prompt_hash  VARCHAR NOT NULL,   -- '' for human annotations
    schema_hash  VARCHAR NOT NULL,   -- '' for human annotations
    description  VARCHAR,
    ocr_text     VARCHAR,
    intent       VARCHAR,
    template     VARCHAR,
    tone         VARCHAR,
    entities     JSON,               -- [{"name":..., "role": hero|villain|victim|other, "stands_for":...}]
    raw          JSON,               -- the full object as produced/imported, including user-defined fields
    run_id       VARCHAR,            -- caption_runs.run_id, or the import's id
    tokens_in    INTEGER,
    tokens_out   INTEGER,
    latency_ms   DOUBLE,
    created_at   TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (meme_id, annotator, prompt_hash, schema_hash)
);

CREATE TABLE imports (
    import_id   VARCHAR PRIMARY KEY,
    file        VARCHAR NOT NULL,
    format      VARCHAR NOT NULL,
    annotator   VARCHAR NOT NULL,
    mapping     JSON,
    n_rows      INTEGER,
    n_imported  INTEGER,
    n_failed    INTEGER,
    software    JSON,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);
