-- Content-addressed blobs (version 4, PostgreSQL only): the large values of Contexts,
-- stored once by their digest (xxh3-128) and read through a local cache directory
-- (see crucible_actors/store/_pg_blobs.py). SQLite keeps its blobs in a directory beside
-- the database file, so it has no version 4 of its own.

CREATE TABLE blobs (
    digest      text PRIMARY KEY,
    size        bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    touched_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE blob_chunks (
    digest  text NOT NULL REFERENCES blobs (digest) ON DELETE CASCADE,
    seq     integer NOT NULL,
    data    bytea NOT NULL,
    PRIMARY KEY (digest, seq)
);
-- Blob bytes are pickles of array buffers: compressing them with pglz costs CPU and
-- rarely saves space. EXTERNAL keeps them out of line and uncompressed.
ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
