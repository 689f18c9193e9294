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

-- name: Update
UPDATE tasks SET command = ?, type = ?, enabled = ?, params = ?, env = ?, timeout_seconds = ?,
                 retries = ?, updated_at = ?
WHERE id = ?

-- name: Delete
DELETE FROM tasks WHERE id = ?

-- name: WithJobFlag
SELECT id, command, type, enabled, params, env, timeout_seconds, retries, created_at, updated_at,
       EXISTS (SELECT 1 FROM jobs j WHERE j.task_id = t.id)
FROM tasks t ORDER BY id
