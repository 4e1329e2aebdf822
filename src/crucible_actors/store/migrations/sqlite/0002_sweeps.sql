-- Sweeps (version 2): a sweep and its points; each point names the run it became.

CREATE TABLE sweeps (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    experiment_id  TEXT NOT NULL,
    sweep          TEXT NOT NULL,
    runs           INTEGER NOT NULL,
    status         TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    finished_at    TEXT
);
CREATE INDEX sweeps_by_experiment ON sweeps (experiment_id, seq);

CREATE TABLE sweep_points (
    sweep_id    TEXT NOT NULL,
    position    INTEGER NOT NULL,
    point       INTEGER NOT NULL,
    repetition  INTEGER NOT NULL,
    run_id      TEXT NOT NULL,
    parameters  TEXT NOT NULL,
    seed        INTEGER NOT NULL,
    PRIMARY KEY (sweep_id, position)
) WITHOUT ROWID;
CREATE INDEX sweep_points_by_run ON sweep_points (run_id);
