-- +goose Up
-- Times are Unix milliseconds (INTEGER) so both dialects compare and sort them the same way.
-- JSON values are TEXT holding JSON; NULL means "not set".
CREATE TABLE tasks (
    id              TEXT PRIMARY KEY,
    command         TEXT    NOT NULL,
    type            TEXT    NOT NULL,
    enabled         INTEGER NOT NULL,
    params          TEXT,
    env             TEXT,
    timeout_seconds REAL,
    retries         INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    task_id          TEXT    NOT NULL,
    type             TEXT    NOT NULL,
    command          TEXT    NOT NULL,
    task_snapshot    TEXT    NOT NULL,
    params           TEXT,
    env              TEXT,
    status           TEXT    NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 1,
    timeout_ms       INTEGER,
    submitted_at     INTEGER NOT NULL,
    run_after        INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    exit_code        INTEGER,
    result           TEXT,
    error            TEXT,
    error_traceback  TEXT,
    artifact_id      TEXT,
    progress         TEXT,
    node             TEXT,
    lease_until      INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0, -- 1 cancel, 2 cancel and delete
    event_seq        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_pending ON jobs (run_after, id) WHERE status = 'pending';
CREATE INDEX jobs_running ON jobs (node, lease_until) WHERE status = 'running';
CREATE INDEX jobs_task ON jobs (task_id);
CREATE INDEX jobs_status ON jobs (status, id);
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

-- One row per status change and one per flushed chunk of output lines; seq is the
-- per-job SSE event id (a log chunk covers seq-count+1 .. seq).
CREATE TABLE job_events (
    job_id TEXT    NOT NULL,
    seq    INTEGER NOT NULL,
    kind   TEXT    NOT NULL,
    count  INTEGER NOT NULL,
    bytes  INTEGER NOT NULL,
    data   TEXT    NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;

CREATE TABLE artifacts (
    id         TEXT PRIMARY KEY,
    parent_id  TEXT REFERENCES artifacts (id) ON DELETE CASCADE,
    level      INTEGER NOT NULL,
    data       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX artifacts_parent ON artifacts (parent_id);

-- +goose Down
DROP TABLE artifacts;
DROP TABLE job_events;
DROP TABLE jobs;
DROP TABLE tasks;
