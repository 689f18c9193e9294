-- +goose Up
-- Schedules and limits per task (see the task package, "Schedules").
-- schedule_since is when the schedule last started to apply (set, changed, or
-- the task enabled); last_slot is the latest slot handled (fired, skipped or
-- taken by another node). Slots after both and before now were missed: that
-- is what catch_up decides about at start-up. conc_limit is the effective
-- limit the claim enforces: max_concurrent, or 1 when overlap is queue or
-- cancel_previous; NULL is unlimited.
ALTER TABLE tasks ADD COLUMN schedule TEXT;
ALTER TABLE tasks ADD COLUMN timezone TEXT;
ALTER TABLE tasks ADD COLUMN overlap TEXT NOT NULL DEFAULT 'skip';
ALTER TABLE tasks ADD COLUMN catch_up TEXT NOT NULL DEFAULT 'latest';
ALTER TABLE tasks ADD COLUMN max_concurrent BIGINT;
ALTER TABLE tasks ADD COLUMN priority BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN conc_limit BIGINT;
ALTER TABLE tasks ADD COLUMN schedule_since BIGINT;
ALTER TABLE tasks ADD COLUMN last_slot BIGINT;
-- Counts the running jobs claimed under conc_limit (PostgreSQL's claim
-- checks and bumps it; SQLite, one writer, counts rows instead).
ALTER TABLE tasks ADD COLUMN running BIGINT NOT NULL DEFAULT 0;

ALTER TABLE jobs ADD COLUMN triggered_by TEXT NOT NULL DEFAULT 'api';
ALTER TABLE jobs ADD COLUMN scheduled_for BIGINT;
ALTER TABLE jobs ADD COLUMN priority BIGINT NOT NULL DEFAULT 0;
-- 1 while the job runs under its task's conc_limit.
ALTER TABLE jobs ADD COLUMN limited BIGINT NOT NULL DEFAULT 0;

-- One job per (task, slot): a second node's fire of the same slot is a no-op.
-- Partial, so jobs not from a schedule cost no entry.
CREATE UNIQUE INDEX jobs_slot ON jobs (task_id, scheduled_for) WHERE scheduled_for IS NOT NULL;
-- The claim walks ready jobs highest priority first, then in submit order.
CREATE INDEX jobs_ready ON jobs (priority DESC, id) WHERE status = 'pending';
-- A task's pending jobs in claim order, and its running ones: the claim's
-- per-task limit and the overlap check of a fire.
CREATE INDEX jobs_task_pending ON jobs (task_id, priority DESC, id) WHERE status = 'pending';
CREATE INDEX jobs_task_running ON jobs (task_id) WHERE status = 'running';

-- A job that leaves running gives its task's counter back, whatever ended it
-- (finish, retry, cancel, rescue on another node): one trigger instead of a
-- second statement on each of those paths.
-- +goose StatementBegin
CREATE FUNCTION jobs_limited_end() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tasks SET running = running - 1 WHERE id = OLD.task_id AND running > 0;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER jobs_limited_end AFTER UPDATE OF status ON jobs FOR EACH ROW
    WHEN (OLD.status = 'running' AND NEW.status <> 'running' AND OLD.limited = 1)
    EXECUTE FUNCTION jobs_limited_end();

-- +goose Down
DROP TRIGGER jobs_limited_end ON jobs;
DROP FUNCTION jobs_limited_end();
DROP INDEX jobs_task_running;
DROP INDEX jobs_task_pending;
DROP INDEX jobs_ready;
DROP INDEX jobs_slot;
ALTER TABLE jobs DROP COLUMN limited;
ALTER TABLE jobs DROP COLUMN priority;
ALTER TABLE jobs DROP COLUMN scheduled_for;
ALTER TABLE jobs DROP COLUMN triggered_by;
ALTER TABLE tasks DROP COLUMN running;
ALTER TABLE tasks DROP COLUMN last_slot;
ALTER TABLE tasks DROP COLUMN schedule_since;
ALTER TABLE tasks DROP COLUMN conc_limit;
ALTER TABLE tasks DROP COLUMN priority;
ALTER TABLE tasks DROP COLUMN max_concurrent;
ALTER TABLE tasks DROP COLUMN catch_up;
ALTER TABLE tasks DROP COLUMN overlap;
ALTER TABLE tasks DROP COLUMN timezone;
ALTER TABLE tasks DROP COLUMN schedule;
