-- Queries for the Idempotency-Key middleware (idempotency.go). Times are Unix ms.

-- name: Claim
-- Inserts an in-flight record; no row is affected when the key is already held,
-- which makes the claim atomic without a transaction on both dialects.
INSERT INTO idempotency_keys (scope, idem_key, body_hash, status, created_at)
VALUES (?, ?, ?, 0, ?)
ON CONFLICT (scope, idem_key) DO NOTHING;

-- name: Load
SELECT body_hash, status, location, content_type, body, created_at
FROM idempotency_keys WHERE scope = ? AND idem_key = ?;

-- name: Complete
UPDATE idempotency_keys SET status = ?, location = ?, content_type = ?, body = ?
WHERE scope = ? AND idem_key = ? AND created_at = ?;

-- name: Release
-- Removes one specific record (matched by created_at too, so a newer claim of
-- the same key by another request is never removed by mistake).
DELETE FROM idempotency_keys WHERE scope = ? AND idem_key = ? AND created_at = ?;

-- name: Purge
DELETE FROM idempotency_keys WHERE created_at < ?;
