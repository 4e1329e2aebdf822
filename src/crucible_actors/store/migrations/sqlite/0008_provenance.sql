-- Provenance (version 8): what produced each run. The environment part (versions,
-- packages, platform, host, git) is stored once by content in ``environments`` and
-- shared by the runs that have the same one; a run keeps only its reference, its
-- stages' code fingerprints and its inputs' digests. Cached results keep the code
-- fingerprint of the stage that computed them.

CREATE TABLE environments (
    id          TEXT PRIMARY KEY,
    record      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

ALTER TABLE runs ADD COLUMN provenance TEXT;

ALTER TABLE stage_results ADD COLUMN code TEXT NOT NULL DEFAULT '';
