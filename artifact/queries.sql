-- name: Insert
INSERT INTO artifacts (id, parent_id, level, data, created_at, updated_at)
VALUES (?, ?, COALESCE((SELECT level + 1 FROM artifacts WHERE id = ?), 0), ?, ?, ?)
RETURNING level

-- name: Get
SELECT id, parent_id, level, data, created_at, updated_at FROM artifacts WHERE id = ?

-- name: Exists
SELECT COUNT(*) FROM artifacts WHERE id = ?

-- name: List
SELECT id, parent_id, level, data, created_at, updated_at FROM artifacts ORDER BY id LIMIT ? OFFSET ?

-- name: Count
SELECT COUNT(*) FROM artifacts

-- name: Update
UPDATE artifacts SET data = ?, updated_at = ? WHERE id = ?
RETURNING id, parent_id, level, data, created_at, updated_at

-- name: CountChildren
SELECT COUNT(*) FROM artifacts WHERE parent_id = ?

-- name: Children
SELECT id, parent_id, level, data, created_at, updated_at FROM artifacts WHERE parent_id = ? ORDER BY id

-- name: Delete
DELETE FROM artifacts WHERE id = ?
