-- Human pair ratings, evaluation results, and label-interpretability tasks.

CREATE TABLE pair_sets (
    pair_set    VARCHAR PRIMARY KEY,
    strategy    VARCHAR,              -- random | stratified | imported
    runs        JSON,                 -- the runs the sample was drawn for (stratified: whose together/apart pattern defines the strata)
    seed        INTEGER,
    params      JSON,                 -- n, noise handling, dimensions, and for stratified sets the population size of every stratum
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE rating_pairs (
    pair_set  VARCHAR NOT NULL,
    pair_id   VARCHAR NOT NULL,       -- 'p' + 12 hex of SHA-256 over the two meme ids in sorted order: the same pair has the same id in every set
    meme_a    VARCHAR NOT NULL,
    meme_b    VARCHAR NOT NULL,
    stratum   VARCHAR,                -- random | imported | 'T'/'A' per run (together/apart), e.g. 'TA' for two runs
    position  INTEGER,                -- row order on the rating sheet (seeded shuffle, so strata are not grouped)
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
    eval_id     VARCHAR NOT NULL,     -- groups the rows of one command
    run_id      VARCHAR,              -- NULL for metrics of a pair set (agreement)
    metric      VARCHAR NOT NULL,     -- cq | delta_cq | alpha_ordinal | ari | nmi | v_measure | purity | label_precision | ...
    value       DOUBLE,
    ci_low      DOUBLE,
    ci_high     DOUBLE,
    n           INTEGER,
    details     JSON,                 -- n_within, n_between, noise handling, dimension, bootstrap B, seed, ...
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
    pair_set    VARCHAR,              -- the pair set behind a rating-based metric
    dimension   VARCHAR,              -- the rating dimension, or the truth column for known-label metrics
    command     VARCHAR               -- quality | agreement | labels | sweep | label-task
);

-- Label interpretability task (Arminio et al. 2025): coders see a few memes of
-- one cluster and pick its label from the list of all labels. The key stays here.
CREATE TABLE label_tasks (
    task_id     VARCHAR PRIMARY KEY,
    run_id      VARCHAR NOT NULL,
    params      JSON,                 -- memes per item, items per cluster, seed, label source
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE label_task_options (
    task_id     VARCHAR NOT NULL,
    option      VARCHAR NOT NULL,     -- code shown to coders: L01, L02, ...
    cluster     INTEGER NOT NULL,
    label       VARCHAR NOT NULL,
    PRIMARY KEY (task_id, option)
);

CREATE TABLE label_task_items (
    task_id     VARCHAR NOT NULL,
    item_id     VARCHAR NOT NULL,     -- I001, I002, ... in the (shuffled) order shown
    cluster     INTEGER NOT NULL,     -- the hidden key
    meme_ids    JSON NOT NULL,
    PRIMARY KEY (task_id, item_id)
);
