-- +goose Up
-- Times are Unix milliseconds (INTEGER) so both dialects compare and sort them the same way.
-- JSON values are TEXT holding JSON; NULL means "not set".
CREATE TABLE tasks (
    id              TEXT PRIMARY KEY,
    command         TEXT    NOT NULL,
    type            TEXT    NOT NULL,
    enabled         BOOLEAN NOT NULL,
    params          TEXT,
    env             TEXT,
    timeout_seconds DOUBLE PRECISION,
    retries         BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
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
    attempt          BIGINT NOT NULL DEFAULT 0,
    max_attempts     BIGINT NOT NULL DEFAULT 1,
    timeout_ms       BIGINT,
    submitted_at     BIGINT NOT NULL,
    run_after        BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    exit_code        BIGINT,
    result           TEXT,
    error            TEXT,
    error_traceback  TEXT,
    artifact_id      TEXT,
    progress         TEXT,
    node             TEXT,
    lease_until      BIGINT,
    cancel_requested SMALLINT NOT NULL DEFAULT 0,
    event_seq        BIGINT NOT NULL DEFAULT 0
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
    seq    BIGINT NOT NULL,
    kind   TEXT    NOT NULL,
    count  BIGINT NOT NULL,
    bytes  BIGINT NOT NULL,
    data   TEXT    NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE artifacts (
    id         TEXT PRIMARY KEY,
    parent_id  TEXT REFERENCES artifacts (id) ON DELETE CASCADE,
    level      BIGINT NOT NULL,
    data       TEXT    NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX artifacts_parent ON artifacts (parent_id);

-- +goose Down
DROP TABLE artifacts;
DROP TABLE job_events;
DROP TABLE jobs;
DROP TABLE tasks;
