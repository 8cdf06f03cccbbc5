-- Embedding spaces and vectors. A space is a named thing that was embedded
-- (e.g. 'text:description+intent', 'image:clip-vit-b-32') with one model and dimension.

CREATE TABLE embedding_spaces (
    space       VARCHAR PRIMARY KEY,
    kind        VARCHAR NOT NULL,      -- text | image
    model       VARCHAR NOT NULL,
    dim         INTEGER NOT NULL,
    params      JSON,                  -- fields, template, annotator, normalisation, ...
    software    JSON,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
    updated_at  TIMESTAMP
);

CREATE TABLE embeddings (
    meme_id     VARCHAR NOT NULL,
    space       VARCHAR NOT NULL,
    model       VARCHAR NOT NULL,
    dim         INTEGER NOT NULL,
    vector      FLOAT[] NOT NULL,      -- float32, L2-normalised
    input_hash  VARCHAR,               -- hash of the text/image bytes embedded, to detect stale vectors
    annotator   VARCHAR,               -- for text spaces: whose annotation was embedded
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (meme_id, space)
);
