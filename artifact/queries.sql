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

-- name: Delete
-- Descendants go with it through parent_id's ON DELETE CASCADE.
DELETE FROM artifacts WHERE id = ?

-- name: DeleteLeaf
-- Deletes only an artifact without children, deciding and acting in one statement.
DELETE FROM artifacts WHERE id = ? AND NOT EXISTS (SELECT 1 FROM artifacts WHERE parent_id = ?)

-- name: Subtree
-- The artifact and all its descendants in one query, parents before their
-- children (a child's level is always its parent's + 1) and siblings oldest first.
WITH RECURSIVE subtree (id) AS (
    SELECT id FROM artifacts WHERE id = ?
    UNION ALL
    SELECT a.id FROM artifacts a JOIN subtree s ON a.parent_id = s.id
)
SELECT a.id, a.parent_id, a.level, a.data, a.created_at, a.updated_at
FROM artifacts a JOIN subtree s ON a.id = s.id
ORDER BY a.level, a.id
