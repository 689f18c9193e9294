-- name: Insert
INSERT INTO tasks (id, command, type, enabled, params, env, timeout_seconds, retries, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: Get
SELECT id, command, type, enabled, params, env, timeout_seconds, retries, created_at, updated_at
FROM tasks WHERE id = ?

-- name: List
SELECT id, command, type, enabled, params, env, timeout_seconds, retries, created_at, updated_at
FROM tasks
WHERE (? = '' OR enabled = ?) AND (? = '' OR type = ?)
ORDER BY id LIMIT ? OFFSET ?

-- name: Count
SELECT COUNT(*) FROM tasks WHERE (? = '' OR enabled = ?) AND (? = '' OR type = ?)

-- name: GetVersion
SELECT id, command, type, enabled, params, env, timeout_seconds, retries, created_at, updated_at, version
FROM tasks WHERE id = ?

-- Conditional on the version read: a concurrent update makes this change
-- nothing, and Update re-reads and re-applies its patch.
-- name: Update
UPDATE tasks SET command = ?, type = ?, enabled = ?, params = ?, env = ?, timeout_seconds = ?,
                 retries = ?, updated_at = ?, version = version + 1
WHERE id = ? AND version = ?

-- name: Delete
DELETE FROM tasks WHERE id = ?

-- name: WithJobFlag
SELECT id, command, type, enabled, params, env, timeout_seconds, retries, created_at, updated_at,
       EXISTS (SELECT 1 FROM jobs j WHERE j.task_id = t.id)
FROM tasks t ORDER BY id
