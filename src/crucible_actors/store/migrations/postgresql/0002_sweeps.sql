-- Sweeps (version 2, PostgreSQL); same tables as migrations/sqlite/0002_sweeps.sql.

CREATE TABLE sweeps (
    seq            bigserial PRIMARY KEY,
    id             text NOT NULL UNIQUE,
    experiment_id  text NOT NULL,
    sweep          jsonb NOT NULL,
    runs           integer NOT NULL,
    status         text NOT NULL,
    created_at     timestamptz NOT NULL,
    finished_at    timestamptz
);
CREATE INDEX sweeps_by_experiment ON sweeps (experiment_id, seq);

CREATE TABLE sweep_points (
    sweep_id    text NOT NULL,
    position    integer NOT NULL,
    point       integer NOT NULL,
    repetition  integer NOT NULL,
    run_id      text NOT NULL,
    parameters  jsonb NOT NULL,
    seed        bigint NOT NULL,
    PRIMARY KEY (sweep_id, position)
);
CREATE INDEX sweep_points_by_run ON sweep_points (run_id);
