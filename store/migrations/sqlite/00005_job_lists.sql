-- +goose Up
-- A task's jobs newest first (GET /api/v1/jobs?task_id=): in (task_id, id)
-- order a page is a walk from its start, where jobs_task (task_id) made the
-- database fetch and sort all of the task's jobs, or walk the whole table
-- in id order looking for them (100 ms at 100k jobs). It replaces
-- jobs_task, whose lookups it serves as well, so a job's insert updates no
-- more indexes than before.
CREATE INDEX jobs_task_id ON jobs (task_id, id);
DROP INDEX jobs_task;
-- The jobs schedules made, newest first (?trigger=schedule). Partial: the
-- jobs of $execute, usually most of them, cost no entry.
CREATE INDEX jobs_scheduled ON jobs (id) WHERE triggered_by = 'schedule';

-- +goose Down
DROP INDEX jobs_scheduled;
CREATE INDEX jobs_task ON jobs (task_id);
DROP INDEX jobs_task_id;
