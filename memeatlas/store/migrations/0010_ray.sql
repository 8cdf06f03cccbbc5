-- Distributed execution (Ray): the result shards a driver has merged into this store.
-- A worker writes one Parquet shard per block of work; the driver (the single DuckDB
-- writer) merges each shard in one transaction together with its row here, so a killed
-- and restarted job merges every finished shard exactly once.

CREATE TABLE engine_shards (
    job_id     VARCHAR NOT NULL,     -- 'caption-<hash of annotator/prompt/schema>' | 'embed-<hash of space/model/recipe>'
    shard      VARCHAR NOT NULL,     -- file name of the result shard inside the job directory
    step       VARCHAR NOT NULL,     -- caption | embed
    engine     VARCHAR NOT NULL,     -- ray
    run_id     VARCHAR,              -- the run that produced the shard (caption_runs.run_id; the space for embed)
    merged_by  VARCHAR,              -- the run that merged it (differs after a resume)
    n_rows     INTEGER NOT NULL,
    n_failed   INTEGER NOT NULL DEFAULT 0,
    worker     JSON,                 -- host, pid, device of the worker that wrote it
    merged_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (job_id, shard)
);

-- caption_failures.error gains one code with this engine: 'worker_error', a backend that raised
-- on a worker (the batch is redone one meme at a time; `detail` holds the exception).
