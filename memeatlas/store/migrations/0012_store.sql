-- The DuckDB storage format of the file, recorded when a store is created or converted,
-- and an `entity_roles` that DuckDB 1.1-1.3 clients can read.

CREATE TABLE store_format (
    storage_version   VARCHAR NOT NULL,   -- DuckDB's tag for the file format, e.g. 'v1.0.0+' (written with storage_compatibility_version v1.1.0)
    duckdb_version    VARCHAR NOT NULL,   -- the DuckDB library that wrote or converted the file
    memeatlas_version VARCHAR,
    event             VARCHAR NOT NULL,   -- created | converted | recorded (an older store, first seen by this version)
    detail            JSON,               -- conversion: source format, row counts checked, seconds
    recorded_at       TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- Same rows and columns as before; WITH ORDINALITY (serialised in a form only DuckDB >= 1.4
-- reads) is replaced by indexing the parsed list, so older clients can open the file.
CREATE OR REPLACE VIEW entity_roles AS
SELECT a.meme_id, a.annotator, a.prompt_hash, a.schema_hash,
       t.i AS entity_index,
       a.es[t.i].name AS name, a.es[t.i].role AS role, a.es[t.i].stands_for AS stands_for
FROM (SELECT meme_id, annotator, prompt_hash, schema_hash,
             from_json(entities, '[{"name":"VARCHAR","role":"VARCHAR","stands_for":"VARCHAR"}]') AS es
      FROM annotations) a,
     unnest(generate_series(1, len(a.es))) AS t(i);
