-- Resume count (version 5): how often a run was restarted from its checkpoint, so a
-- run that never finishes is failed after a few resumes instead of resumed forever.

ALTER TABLE runs ADD COLUMN resume_count INTEGER NOT NULL DEFAULT 0;
