-- crucible-actors schema, version 6 (SQLite): how an owner's liveness is checked without
-- clocks. "pid:<boot id>:<start time>" for a process on this host (see _core/_owner.py);
-- NULL for rows of older versions (then only the heartbeat says).

ALTER TABLE owners ADD COLUMN lease TEXT;
