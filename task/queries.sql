-- /*COLS*/ is the column list scanTask reads, in its order.

-- name: Insert
INSERT INTO tasks (id, command, type, enabled, params, env, timeout_seconds, retries, created_at, updated_at,
                   schedule, timezone, overlap, catch_up, max_concurrent, priority, conc_limit, schedule_since)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: Get
SELECT /*COLS*/ FROM tasks WHERE id = ?

-- name: List
SELECT /*COLS*/ FROM tasks
WHERE (? = '' OR enabled = ?) AND (? = '' OR type = ?)
ORDER BY id LIMIT ? OFFSET ?

-- name: Count
SELECT COUNT(*) FROM tasks WHERE (? = '' OR enabled = ?) AND (? = '' OR type = ?)

-- Conditional on the version read: a concurrent update makes this change
-- nothing, and Update re-reads and re-applies its patch.
-- name: Update
UPDATE tasks SET command = ?, type = ?, enabled = ?, params = ?, env = ?, timeout_seconds = ?,
                 retries = ?, updated_at = ?, schedule = ?, timezone = ?, overlap = ?, catch_up = ?,
                 max_concurrent = ?, priority = ?, conc_limit = ?, schedule_since = ?, version = version + 1
WHERE id = ? AND version = ?

-- name: Delete
DELETE FROM tasks WHERE id = ?

-- name: WithJobFlag
SELECT /*COLS*/, EXISTS (SELECT 1 FROM jobs j WHERE j.task_id = t.id)
FROM tasks t ORDER BY id

-- The tasks a node's schedule loop keeps: enabled, with a schedule.
-- name: Scheduled
SELECT /*COLS*/ FROM tasks WHERE schedule IS NOT NULL AND enabled = ? ORDER BY id

-- name: LastFire
SELECT id, scheduled_for, status FROM jobs WHERE task_id = ? AND scheduled_for IS NOT NULL
ORDER BY scheduled_for DESC LIMIT 1
