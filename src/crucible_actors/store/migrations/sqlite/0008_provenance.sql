-- Provenance (version 8): what produced each run. The environment part (versions,
-- packages, platform, host, git) is stored once by content in ``environments`` and
-- shared by the runs that have the same one; a run keeps only its reference, its
-- stages' code fingerprints and its inputs' digests. Cached results keep the code
-- fingerprint of the stage that computed them. Each distinct experiment definition is
-- stored once by content in ``definitions`` too, and a run names its own in
-- ``runs.provenance`` (``definition``): ``experiments`` keeps only the latest definition
-- submitted under an id, which is not what older runs of that id ran.

CREATE TABLE environments (
    id          TEXT PRIMARY KEY,
    record      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE definitions (
    id          TEXT PRIMARY KEY,
    definition  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

ALTER TABLE runs ADD COLUMN provenance TEXT;

ALTER TABLE stage_results ADD COLUMN code TEXT NOT NULL DEFAULT '';
