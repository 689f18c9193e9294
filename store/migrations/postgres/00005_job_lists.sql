-- +goose Up
-- A task's jobs newest first (GET /api/v1/jobs?task_id=): in (task_id, id)
-- order a page is a walk from its start, where with jobs_task (task_id)
-- alone the database fetched and sorted all of the task's jobs, or walked
-- the whole table in id order looking for them (190 ms for a task's newest
-- failed jobs at 1M jobs).
--
-- Unlike on SQLite, jobs_task stays: B-tree deduplication keeps a
-- one-column index of a few thousand task ids 18 times smaller than any
-- other index of every job (7 MB against 129 MB at 1M jobs), and counts of
-- all jobs, or of one task's, are index-only scans of it: half the time of
-- one over the primary key.
CREATE INDEX jobs_task_id ON jobs (task_id, id);
-- The jobs schedules made, newest first (?trigger=schedule). Partial: the
-- jobs of $execute, usually most of them, cost no entry.
CREATE INDEX jobs_scheduled ON jobs (id) WHERE triggered_by = 'schedule';

-- +goose Down
DROP INDEX jobs_scheduled;
DROP INDEX jobs_task_id;
