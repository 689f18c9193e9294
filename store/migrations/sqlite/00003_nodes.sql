-- +goose Up
-- The nodes sharing this database: each server process upserts its row when it
-- renews its jobs' leases (every lease/3) and deletes it on a clean shutdown.
-- A node is live while last_seen is recent; GET /api/v1/system lists the live ones.
CREATE TABLE nodes (
    id         TEXT PRIMARY KEY,
    host       TEXT   NOT NULL,
    pid        INTEGER NOT NULL,
    version    TEXT   NOT NULL,
    started_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    lease_ms   INTEGER NOT NULL
);

-- Tasks change with a conditional UPDATE on their version, so two concurrent
-- PATCHes of different fields both land (the loser re-reads and re-applies).
ALTER TABLE tasks ADD COLUMN version INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE tasks DROP COLUMN version;
DROP TABLE nodes;
