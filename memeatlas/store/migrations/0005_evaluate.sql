-- Human pair ratings and evaluation results.

CREATE TABLE pair_sets (
    pair_set    VARCHAR PRIMARY KEY,
    strategy    VARCHAR,              -- random | stratified | imported
    runs        JSON,
    seed        INTEGER,
    params      JSON,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE rating_pairs (
    pair_set  VARCHAR NOT NULL,
    pair_id   VARCHAR NOT NULL,
    meme_a    VARCHAR NOT NULL,
    meme_b    VARCHAR NOT NULL,
    stratum   VARCHAR,
    PRIMARY KEY (pair_set, pair_id)
);

CREATE TABLE ratings (
    pair_set   VARCHAR NOT NULL,
    pair_id    VARCHAR NOT NULL,
    coder      VARCHAR NOT NULL,
    dimension  VARCHAR NOT NULL,     -- e.g. connotative, denotative
    rating     DOUBLE NOT NULL,      -- on the 1..3 scale (mapped linearly from --scale when given)
    raw_rating DOUBLE,               -- as given in the file
    source     VARCHAR,              -- the imported file
    imported_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (pair_set, pair_id, coder, dimension)
);

CREATE TABLE evaluations (
    eval_id     VARCHAR NOT NULL,
    run_id      VARCHAR,              -- NULL for metrics of a pair set (agreement)
    metric      VARCHAR NOT NULL,     -- cq | delta_cq | alpha_ordinal | ari | nmi | v_measure | purity | label_precision | ...
    value       DOUBLE,
    ci_low      DOUBLE,
    ci_high     DOUBLE,
    n           INTEGER,
    details     JSON,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);
