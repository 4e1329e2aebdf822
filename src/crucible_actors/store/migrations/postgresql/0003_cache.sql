-- Stage result cache (version 3, PostgreSQL); same tables as migrations/sqlite/0003_cache.sql.

ALTER TABLE stage_attempts ADD COLUMN cache_hit boolean NOT NULL DEFAULT false;

CREATE TABLE stage_results (
    seq         bigserial PRIMARY KEY,
    key         text NOT NULL UNIQUE,
    stage       text NOT NULL,
    version     text NOT NULL,
    result      bytea NOT NULL,
    size        bigint NOT NULL,
    run_id      text NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX stage_results_by_stage ON stage_results (stage, seq);
