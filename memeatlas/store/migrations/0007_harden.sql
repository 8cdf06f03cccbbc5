-- Hardening (issue 16): imports record what they warned about, and caption runs say
-- whether they finished or were cut short.

-- Rows an import stored with a caveat (a repeated id whose last row wins, ...):
-- {"<code>": {"count": n, "detail": "...", "examples": ["<file>:<line>", ...]}}.
ALTER TABLE imports ADD COLUMN n_warnings INTEGER;
ALTER TABLE imports ADD COLUMN warnings JSON;

-- running | finished | interrupted (a run with no end, marked when the next caption run starts).
ALTER TABLE caption_runs ADD COLUMN status VARCHAR;
UPDATE caption_runs SET status = CASE WHEN finished_at IS NULL THEN 'interrupted' ELSE 'finished' END;
