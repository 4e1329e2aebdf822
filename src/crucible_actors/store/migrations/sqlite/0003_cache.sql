-- Stage result cache (version 3): results by key, and whether an attempt was a hit.

ALTER TABLE stage_attempts ADD COLUMN cache_hit INTEGER NOT NULL DEFAULT 0;

CREATE TABLE stage_results (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    key         TEXT NOT NULL UNIQUE,
    stage       TEXT NOT NULL,
    version     TEXT NOT NULL,
    result      BLOB NOT NULL,
    size        INTEGER NOT NULL,
    run_id      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX stage_results_by_stage ON stage_results (stage, seq);
