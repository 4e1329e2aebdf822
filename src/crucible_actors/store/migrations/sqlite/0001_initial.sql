-- crucible-actors schema, version 1 (SQLite). JSON columns hold JSON text, timestamps
-- ISO 8601 text in UTC, checkpoints the msgpack Context.

CREATE TABLE experiments (
    id          TEXT PRIMARY KEY,
    definition  TEXT NOT NULL,
    owner       TEXT,
    tags        TEXT NOT NULL,
    metadata    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE owners (
    id            TEXT PRIMARY KEY,
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    started_at    TEXT NOT NULL,
    heartbeat_at  TEXT NOT NULL
);

CREATE TABLE runs (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    experiment_id  TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN
                   ('pending', 'running', 'completed', 'failed', 'cancelled', 'interrupted')),
    metrics        TEXT NOT NULL,
    outputs        TEXT NOT NULL,
    metadata       TEXT NOT NULL,
    failure        TEXT,
    started_at     TEXT,
    finished_at    TEXT,
    owner_id       TEXT
);
CREATE INDEX runs_by_status ON runs (status, seq);
CREATE INDEX runs_by_experiment ON runs (experiment_id, seq);

CREATE TABLE stage_attempts (
    run_id       TEXT NOT NULL,
    stage_index  INTEGER NOT NULL,
    attempt      INTEGER NOT NULL,
    stage        TEXT NOT NULL,
    status       TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    duration     REAL,
    error        TEXT,
    PRIMARY KEY (run_id, stage_index, attempt)
) WITHOUT ROWID;

CREATE TABLE checkpoints (
    run_id       TEXT NOT NULL,
    stage_index  INTEGER NOT NULL,
    context      BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (run_id, stage_index)
);

CREATE TABLE artifacts (
    run_id    TEXT NOT NULL,
    position  INTEGER NOT NULL,
    key       TEXT NOT NULL,
    name      TEXT NOT NULL,
    type      TEXT,
    location  TEXT NOT NULL,
    format    TEXT,
    metadata  TEXT NOT NULL,
    PRIMARY KEY (run_id, position)
);

CREATE TABLE trace_events (
    run_id     TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    type       TEXT NOT NULL,
    stage_id   TEXT,
    timestamp  TEXT,
    event      TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
