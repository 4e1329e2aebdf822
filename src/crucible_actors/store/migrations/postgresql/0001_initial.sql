-- crucible-actors schema, version 1 (PostgreSQL); same tables as migrations/sqlite.

CREATE TABLE experiments (
    id          text PRIMARY KEY,
    definition  jsonb NOT NULL,
    owner       text,
    tags        jsonb NOT NULL,
    metadata    jsonb NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE owners (
    id            text PRIMARY KEY,
    host          text NOT NULL,
    pid           integer NOT NULL,
    started_at    timestamptz NOT NULL,
    heartbeat_at  timestamptz NOT NULL
);

CREATE TABLE runs (
    seq            bigserial PRIMARY KEY,
    id             text NOT NULL UNIQUE,
    experiment_id  text NOT NULL,
    status         text NOT NULL CHECK (status IN
                   ('pending', 'running', 'completed', 'failed', 'cancelled', 'interrupted')),
    metrics        jsonb NOT NULL,
    outputs        jsonb NOT NULL,
    metadata       jsonb NOT NULL,
    failure        jsonb,
    started_at     timestamptz,
    finished_at    timestamptz,
    owner_id       text
);
CREATE INDEX runs_by_status ON runs (status, seq);
CREATE INDEX runs_by_experiment ON runs (experiment_id, seq);

CREATE TABLE stage_attempts (
    run_id       text NOT NULL,
    stage_index  integer NOT NULL,
    attempt      integer NOT NULL,
    stage        text NOT NULL,
    status       text NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    duration     double precision,
    error        text,
    PRIMARY KEY (run_id, stage_index, attempt)
);

CREATE TABLE checkpoints (
    run_id       text NOT NULL,
    stage_index  integer NOT NULL,
    context      bytea NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (run_id, stage_index)
);

CREATE TABLE artifacts (
    run_id    text NOT NULL,
    position  integer NOT NULL,
    key       text NOT NULL,
    name      text NOT NULL,
    type      text,
    location  text NOT NULL,
    format    text,
    metadata  jsonb NOT NULL,
    PRIMARY KEY (run_id, position)
);

CREATE TABLE trace_events (
    run_id     text NOT NULL,
    seq        integer NOT NULL,
    type       text NOT NULL,
    stage_id   text,
    timestamp  timestamptz,
    event      jsonb NOT NULL,
    PRIMARY KEY (run_id, seq)
);
