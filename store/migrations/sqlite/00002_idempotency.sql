-- +goose Up
-- Idempotency-Key records for POST /api/v1/tasks and $execute (see httpapi/idempotency.go).
-- scope is the request path, so one key used on two tasks' $execute names two records.
-- status 0 means the first request is still being handled; otherwise the row holds the
-- response to replay. created_at (Unix ms) bounds the 24 h window and detects abandoned claims.
CREATE TABLE idempotency_keys (
    scope        TEXT    NOT NULL,
    idem_key     TEXT    NOT NULL,
    body_hash    TEXT    NOT NULL,
    status       INTEGER NOT NULL DEFAULT 0,
    location     TEXT,
    content_type TEXT,
    body         TEXT,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (scope, idem_key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
