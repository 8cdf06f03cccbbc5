-- Supervised classification: class labels coded by people (or taken from a manifest field),
-- trained classifiers with their provenance, their predictions, and fine-tuned text encoders.

CREATE TABLE class_labels (
    task         VARCHAR NOT NULL,     -- the coding task / codebook, e.g. 'template', 'stance'
    meme_id      VARCHAR NOT NULL,
    coder        VARCHAR NOT NULL,     -- who assigned it: a coder name, or 'meta:<field>'
    label        VARCHAR NOT NULL,
    source       VARCHAR,              -- the imported file, or 'memes.meta'
    import_id    VARCHAR,              -- groups the rows of one import
    imported_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (task, meme_id, coder)
);

CREATE TABLE classify_models (
    model_id     VARCHAR PRIMARY KEY,
    task         VARCHAR NOT NULL,     -- the class_labels task it was trained on
    head         VARCHAR NOT NULL,     -- knn | linear | adapter | mlp
    spaces       JSON NOT NULL,        -- ["text:...", "image:..."] in input order
    classes      JSON NOT NULL,        -- class names in output order
    params       JSON,                 -- head parameters as used (defaults filled in)
    seed         INTEGER,
    n_train      INTEGER,
    fingerprint  VARCHAR,              -- hash of labels + vectors + head + params + seed
    threshold    DOUBLE,               -- below this top probability a prediction is 'unknown'
    cv           JSON,                 -- folds, macro_f1, accuracy (the full rows are in evaluations)
    format       VARCHAR NOT NULL,     -- e.g. 'pickle:memeatlas.classify/knn'
    model        BLOB NOT NULL,
    software     JSON,
    timings      JSON,
    created_at   TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE class_predictions (
    model_id     VARCHAR NOT NULL,
    meme_id      VARCHAR NOT NULL,
    task         VARCHAR NOT NULL,
    label        VARCHAR NOT NULL,     -- the most probable class
    probability  DOUBLE NOT NULL,      -- its probability
    is_unknown   BOOLEAN NOT NULL,     -- probability below the model's calibrated threshold
    top          JSON,                 -- [{"label":..., "p":...}, ...] most probable first
    predicted_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (model_id, meme_id)
);

-- The newest prediction per meme and task; `assigned` is 'unknown' below the threshold.
CREATE VIEW latest_class_predictions AS
SELECT p.meme_id, p.task, p.model_id, p.label, p.probability, p.is_unknown,
       CASE WHEN p.is_unknown THEN 'unknown' ELSE p.label END AS assigned,
       p.top, p.predicted_at, m.head, m.spaces
FROM class_predictions p
JOIN classify_models m ON m.model_id = p.model_id
QUALIFY row_number() OVER (PARTITION BY p.meme_id, p.task
                           ORDER BY p.predicted_at DESC, m.created_at DESC, p.model_id DESC) = 1;

CREATE TABLE text_encoders (
    encoder_id   VARCHAR PRIMARY KEY,
    path         VARCHAR NOT NULL,     -- the saved sentence-transformers directory (embed text --model PATH)
    base_model   VARCHAR NOT NULL,
    task         VARCHAR NOT NULL,     -- labels it was tuned on
    loss         VARCHAR NOT NULL,     -- mnrl (in-batch negatives) | triplet
    params       JSON,                 -- fields, annotator, epochs, batch size, lr, seed
    n_examples   INTEGER,
    seconds      DOUBLE,
    software     JSON,
    created_at   TIMESTAMP NOT NULL DEFAULT current_timestamp
);
