-- crucible-actors schema, version 6 (PostgreSQL): how an owner's liveness is checked
-- without clocks. "pg_advisory_lock": the owner holds a session-level advisory lock
-- (key: 1668445539, hashtext(id)) the server releases when the session ends; NULL for
-- rows of older versions (then only the heartbeat says).

ALTER TABLE owners ADD COLUMN lease text;
