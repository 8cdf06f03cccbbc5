-- Caption runs and failures, the prompt/schema texts behind their hashes, and
-- the SQL views over annotations.

CREATE TABLE caption_runs (
    run_id        VARCHAR PRIMARY KEY,
    backend       VARCHAR NOT NULL,     -- transformers | vllm | openai | ocr
    model         VARCHAR NOT NULL,
    revision      VARCHAR,
    annotator     VARCHAR NOT NULL,
    prompt_hash   VARCHAR NOT NULL,
    schema_hash   VARCHAR NOT NULL,
    prompt_version VARCHAR,
    sampling      JSON,                 -- temperature, max_new_tokens, seed, ...
    config        JSON,                 -- batch size, max_pixels, device, dtype, ... (never API keys)
    software      JSON,
    started_at    TIMESTAMP NOT NULL,
    finished_at   TIMESTAMP,
    n_done        INTEGER,
    n_failed      INTEGER,
    n_skipped     INTEGER,
    tokens_in     BIGINT,
    tokens_out    BIGINT,
    seconds       DOUBLE,
    timings       JSON                  -- seconds: backend_init (model load), setup, load (images), model, validate, write
);

CREATE TABLE caption_failures (
    meme_id      VARCHAR NOT NULL,
    annotator    VARCHAR NOT NULL,
    prompt_hash  VARCHAR NOT NULL,
    schema_hash  VARCHAR NOT NULL,
    run_id       VARCHAR,
    attempt      INTEGER NOT NULL,
    error        VARCHAR NOT NULL,       -- truncated | invalid_json | schema_violation | request_failed | image_unreadable
    raw_output   VARCHAR,                -- the model's text exactly as returned
    detail       VARCHAR,                -- readable reason (validation message, HTTP status, ...)
    final        BOOLEAN,                -- true on the last failed attempt of a meme the run gave up on
    created_at   TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE prompts (
    prompt_hash  VARCHAR PRIMARY KEY,
    version      VARCHAR,
    text         VARCHAR NOT NULL,
    created_at   TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE annotation_schemas (
    schema_hash  VARCHAR PRIMARY KEY,
    json_schema  JSON NOT NULL,
    created_at   TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- The newest annotation per meme and annotator (a re-prompted model replaces
-- its older prompt's rows here, but those stay in `annotations`).
CREATE VIEW latest_annotations AS
SELECT * FROM annotations
QUALIFY row_number() OVER (PARTITION BY meme_id, annotator ORDER BY created_at DESC, prompt_hash, schema_hash) = 1;

-- One row per entity of every annotation.
CREATE VIEW entity_roles AS
SELECT a.meme_id, a.annotator, a.prompt_hash, a.schema_hash,
       t.idx AS entity_index,
       t.e.name AS name, t.e.role AS role, t.e.stands_for AS stands_for
FROM annotations a,
     unnest(from_json(a.entities, '[{"name":"VARCHAR","role":"VARCHAR","stands_for":"VARCHAR"}]'))
        WITH ORDINALITY AS t(e, idx);
