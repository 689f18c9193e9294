-- Every job state change below is one conditional statement: it names the
-- state it expects (and, for a running job, the attempt it expects), so two
-- nodes, a cancel and a finishing run can race without corrupting anything:
-- the loser simply changes no row. /*COLS*/ is the JobRecord column list.

-- name: Insert
INSERT INTO jobs (id, task_id, type, command, task_snapshot, params, env, status, attempt,
                  max_attempts, timeout_ms, submitted_at, run_after, event_seq, triggered_by, priority)
VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?, 1, ?, ?)

-- A schedule's fire: one job per (task, slot) however many nodes fire it
-- (the unique index jobs_slot makes the second insert a no-op), and with
-- overlap "skip" (the last parameter 1) none while a job of the task is
-- pending or running; and, given a task version (≥ 0), only while the task
-- row is still that version, so a loop's copy of a task that was just
-- changed fires nothing stale. No row inserted: see SlotTaken.
-- name: InsertFire
INSERT INTO jobs (id, task_id, type, command, task_snapshot, params, env, status, attempt,
                  max_attempts, timeout_ms, submitted_at, run_after, event_seq, triggered_by, priority,
                  scheduled_for)
SELECT ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?, 1, 'schedule', ?, ?
WHERE (? < 0 OR EXISTS (SELECT 1 FROM tasks t WHERE t.id = ? AND t.version = ?))
  AND (? = 0 OR (NOT EXISTS (SELECT 1 FROM jobs a WHERE a.task_id = ? AND a.status = 'pending')
                 AND NOT EXISTS (SELECT 1 FROM jobs a WHERE a.task_id = ? AND a.status = 'running')))
ON CONFLICT (task_id, scheduled_for) WHERE scheduled_for IS NOT NULL DO NOTHING

-- Why a fire stored nothing: the slot's job exists; the task is no longer
-- the version the fire was made from (second count 0); else overlap.
-- name: SlotTaken
SELECT (SELECT COUNT(*) FROM jobs WHERE task_id = ? AND scheduled_for = ? AND scheduled_for IS NOT NULL),
       (SELECT COUNT(*) FROM tasks WHERE id = ? AND version = ?)

-- The latest slot a task's schedule handled (fired, skipped or found
-- taken), in the fire's transaction: what start-up catch-up counts from.
-- name: MarkSlot
UPDATE tasks SET last_slot = ? WHERE id = ? AND (last_slot IS NULL OR last_slot < ?)

-- name: ActiveOfTask
SELECT id FROM jobs WHERE task_id = ? AND status = 'pending'
UNION ALL SELECT id FROM jobs WHERE task_id = ? AND status = 'running' ORDER BY id

-- name: InsertRunning
INSERT INTO jobs (id, task_id, type, command, task_snapshot, params, env, status, attempt,
                  max_attempts, timeout_ms, submitted_at, run_after, started_at, node, lease_until, event_seq,
                  triggered_by, priority)
VALUES (?, ?, ?, ?, ?, ?, ?, 'running', 1, ?, ?, ?, ?, ?, ?, ?, 2, ?, ?)

-- The same with its two first events, as one statement: PostgreSQL only
-- (data-modifying WITH); one round trip and an autocommit instead of four.
-- name: InsertRunningPG
WITH j AS (
    INSERT INTO jobs (id, task_id, type, command, task_snapshot, params, env, status, attempt,
                      max_attempts, timeout_ms, submitted_at, run_after, started_at, node, lease_until, event_seq,
                      triggered_by, priority)
    VALUES (?, ?, ?, ?, ?, ?, ?, 'running', 1, ?, ?, ?, ?, ?, ?, ?, 2, ?, ?)
    RETURNING id)
INSERT INTO job_events (job_id, seq, kind, count, bytes, data)
SELECT id, 1, 'status', 1, ?::bigint, ?::text FROM j UNION ALL SELECT id, 2, 'status', 1, ?::bigint, ?::text FROM j

-- The ready jobs are picked in a materialized WITH, once: as a subquery in
-- "id IN (…LIMIT n FOR UPDATE SKIP LOCKED)" PostgreSQL may run the pick
-- again for each outer row, and with SKIP LOCKED each run finds other rows,
-- so one claim took far more jobs than slots (49 on a node of 1, caught by
-- TestMaxPendingHoldsUnderConcurrentSubmits). LIMIT (? + 0), not LIMIT ?:
-- SQLite's planner uses a plain LIMIT parameter's value, so each new value
-- re-prepared the statement (3x its cost, measured). ORDER BY priority
-- DESC, id (ULIDs are in submit order) walks the partial index jobs_ready:
-- ordering by run_after sorted every pending job on each claim.
--
-- A job whose task has a concurrency limit (tasks.conc_limit) is ready only
-- while fewer jobs of the task run than the limit, and only the first such
-- job of its task (priority, then submit order) is taken per claim: the
-- count cannot tell two picks of one statement apart. The dispatcher claims
-- again at once when a claim took a limited job. SQLite has one writer, so
-- counting the task's running rows in the statement is exact.
-- (INDEXED BY: without it SQLite's planner took jobs_status and sorted
-- every pending job on each claim.)
-- name: ClaimNext
WITH ready AS MATERIALIZED (
    SELECT j.id FROM jobs j INDEXED BY jobs_ready LEFT JOIN tasks t ON t.id = j.task_id
    WHERE j.status = 'pending' AND j.run_after <= ?
      AND (t.conc_limit IS NULL OR (
          t.conc_limit > (SELECT COUNT(*) FROM jobs r WHERE r.task_id = j.task_id AND r.status = 'running')
          AND j.id = (SELECT p.id FROM jobs p WHERE p.task_id = j.task_id AND p.status = 'pending'
                      AND p.run_after <= ? ORDER BY p.priority DESC, p.id LIMIT 1)))
    ORDER BY j.priority DESC, j.id LIMIT (? + 0))
UPDATE jobs
SET status = 'running', attempt = attempt + 1, started_at = ?, node = ?, lease_until = ?,
    event_seq = event_seq + 1,
    limited = EXISTS (SELECT 1 FROM tasks t WHERE t.id = jobs.task_id AND t.conc_limit IS NOT NULL)
WHERE status = 'pending' AND id IN (SELECT id FROM ready)
RETURNING /*COLS*/

-- On PostgreSQL nodes claim concurrently, and a count in the statement's
-- snapshot would not see another node's claim committing meanwhile. So the
-- limit is a counter, tasks.running, that the claim raises only while it is
-- under the limit, on the task row locked (in id order, so two claims never
-- deadlock): FOR UPDATE re-reads a row another transaction changed and
-- re-checks the condition on its newest version. The trigger
-- jobs_limited_end gives the count back whenever a counted run ends.
-- name: ClaimNextPG
WITH ready AS MATERIALIZED (
    SELECT j.id, j.task_id, j.priority, t.conc_limit FROM jobs j LEFT JOIN tasks t ON t.id = j.task_id
    WHERE j.status = 'pending' AND j.run_after <= ?
      AND (t.conc_limit IS NULL OR t.running < t.conc_limit)
    ORDER BY j.priority DESC, j.id LIMIT (? + 0)
    FOR UPDATE OF j SKIP LOCKED),
firsts AS (
    SELECT DISTINCT ON (task_id) id, task_id FROM ready WHERE conc_limit IS NOT NULL
    ORDER BY task_id, priority DESC, id),
locked AS (
    SELECT t.id FROM tasks t WHERE t.id IN (SELECT task_id FROM firsts) AND t.running < t.conc_limit
    ORDER BY t.id FOR UPDATE),
counted AS (
    UPDATE tasks SET running = running + 1 WHERE id IN (SELECT id FROM locked) RETURNING id)
UPDATE jobs
SET status = 'running', attempt = attempt + 1, started_at = ?, node = ?, lease_until = ?,
    event_seq = event_seq + 1,
    limited = CASE WHEN jobs.task_id IN (SELECT id FROM counted) THEN 1 ELSE 0 END
WHERE status = 'pending'
  AND (id IN (SELECT id FROM ready WHERE conc_limit IS NULL)
       OR id IN (SELECT f.id FROM firsts f JOIN counted c ON c.id = f.task_id))
RETURNING /*COLS*/

-- name: NextRunAfter
SELECT MIN(run_after) FROM jobs WHERE status = 'pending' AND run_after > ?

-- name: Finish
UPDATE jobs
SET status = ?, finished_at = ?, exit_code = ?, result = ?, error = ?, error_traceback = ?,
    artifact_id = ?, lease_until = NULL, event_seq = event_seq + 1
WHERE id = ? AND status = 'running' AND attempt = ?
RETURNING /*COLS*/

-- Finish without reading the row back: the caller predicted the record
-- (see finishPredicted) and needs only the event id and the cancel level.
-- name: FinishLite
UPDATE jobs
SET status = ?, finished_at = ?, exit_code = ?, result = ?, error = ?, error_traceback = ?,
    artifact_id = ?, lease_until = NULL, event_seq = event_seq + 1
WHERE id = ? AND status = 'running' AND attempt = ?
RETURNING event_seq, cancel_requested

-- A failed attempt goes back to pending only if nobody asked to cancel it
-- meanwhile; otherwise EndCanceled ends it (a cancel is never lost to a retry).
-- Finish, its artifact and its status event as one statement: PostgreSQL
-- only (data-modifying WITH), one round trip and an autocommit instead of
-- five. Nothing is inserted when the UPDATE matched no row (the attempt was
-- taken away). The artifact row is what artifact.Manager inserts for a root.
-- name: FinishPG
WITH f AS (
    UPDATE jobs
    SET status = ?, finished_at = ?, exit_code = ?, result = ?, error = ?, error_traceback = ?,
        artifact_id = ?, lease_until = NULL, event_seq = event_seq + 1
    WHERE id = ? AND status = 'running' AND attempt = ?
    RETURNING /*COLS*/),
a AS (
    INSERT INTO artifacts (id, parent_id, level, data, created_at, updated_at)
    SELECT ?::text, NULL, 0, ?::text, ?::bigint, ?::bigint FROM f),
e AS (
    INSERT INTO job_events (job_id, seq, kind, count, bytes, data)
    SELECT id, event_seq, 'status', 1, ?::bigint, ?::text FROM f)
SELECT /*COLS*/ FROM f

-- name: Requeue
UPDATE jobs
SET status = 'pending', run_after = ?, exit_code = ?, error = ?, error_traceback = ?,
    node = NULL, lease_until = NULL, event_seq = event_seq + 1
WHERE id = ? AND status = 'running' AND attempt = ? AND cancel_requested = 0
RETURNING /*COLS*/

-- name: EndCanceled
UPDATE jobs
SET status = 'canceled', finished_at = ?, exit_code = ?, result = ?, error = ?, error_traceback = ?,
    artifact_id = ?, lease_until = NULL, event_seq = event_seq + 1
WHERE id = ? AND status = 'running' AND attempt = ? AND cancel_requested > 0
RETURNING /*COLS*/

-- name: CancelPending
UPDATE jobs
SET status = 'canceled', finished_at = ?, error = ?, artifact_id = ?, event_seq = event_seq + 1
WHERE id = ? AND status = 'pending'
RETURNING /*COLS*/

-- name: RequestCancel
UPDATE jobs SET cancel_requested = ? WHERE id = ? AND status = 'running'
RETURNING node, attempt

-- name: SetProgress
UPDATE jobs SET progress = ?, event_seq = event_seq + 1
WHERE id = ? AND status = 'running' AND attempt = ?
RETURNING /*COLS*/

-- name: ReserveSeq
UPDATE jobs SET event_seq = event_seq + ? WHERE id = ? AND status = 'running' AND attempt = ?
RETURNING event_seq

-- The owner learns from the answer which runs it still holds (a run it
-- lost to a rescue is not in it) and which of them were asked to stop.
-- name: RenewLeases
UPDATE jobs SET lease_until = ? WHERE node = ? AND status = 'running'
RETURNING id, attempt, cancel_requested, started_at

-- A running row of this node with no run behind it (its end could not be
-- stored) is given up: its lease ends now, so a rescue ends it, instead of
-- being renewed forever.
-- name: ReleaseLease
UPDATE jobs SET lease_until = 0 WHERE id = ? AND node = ? AND attempt = ? AND status = 'running'

-- name: CancelRequestedHere
SELECT id, cancel_requested FROM jobs WHERE node = ? AND status = 'running' AND cancel_requested > 0

-- name: Expired
SELECT id, attempt, node FROM jobs WHERE status = 'running' AND lease_until < ?

-- name: RunningNodes
SELECT DISTINCT node FROM jobs WHERE status = 'running'

-- name: RunningOn
SELECT id, attempt, node FROM jobs WHERE status = 'running' AND node = ?

-- A rescue re-checks, in the statement itself, that the lease is still
-- expired (or the node named is known dead): an owner that renewed in the
-- meantime keeps its run. With attempts left and no cancel asked, the job
-- goes back to pending; otherwise RescueEnd ends it.
-- name: RescueRequeue
UPDATE jobs
SET status = 'pending', run_after = ?, error = ?, node = NULL, lease_until = NULL, event_seq = event_seq + 1
WHERE id = ? AND status = 'running' AND attempt = ? AND (lease_until < ? OR node = ?)
  AND attempt < max_attempts AND cancel_requested = 0
RETURNING /*COLS*/

-- name: RescueEnd
UPDATE jobs
SET status = CASE WHEN cancel_requested > 0 THEN 'canceled' ELSE 'failed' END,
    error = CASE WHEN cancel_requested > 0 THEN ? ELSE ? END,
    finished_at = ?, artifact_id = ?, lease_until = NULL, event_seq = event_seq + 1
WHERE id = ? AND status = 'running' AND attempt = ? AND (lease_until < ? OR node = ?)
RETURNING /*COLS*/

-- name: UpsertNode
INSERT INTO nodes (id, host, pid, version, started_at, last_seen, lease_ms) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen, lease_ms = excluded.lease_ms

-- name: DeleteNode
DELETE FROM nodes WHERE id = ?

-- name: LiveNodes
SELECT id, host, pid, version, started_at, last_seen, lease_ms FROM nodes
WHERE last_seen + lease_ms >= ? ORDER BY started_at, id

-- name: PurgeNodes
DELETE FROM nodes WHERE last_seen < ?

-- name: InsertEvent
INSERT INTO job_events (job_id, seq, kind, count, bytes, data) VALUES (?, ?, ?, ?, ?, ?)

-- The pending and running events of a job stored already claimed: one round trip.
-- name: InsertTwoEvents
INSERT INTO job_events (job_id, seq, kind, count, bytes, data) VALUES (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?)

-- name: EventsAfter
SELECT seq, kind, count, data FROM job_events WHERE job_id = ? AND seq > ? ORDER BY seq

-- name: LogEvents
SELECT data FROM job_events WHERE job_id = ? AND kind = 'log' ORDER BY seq

-- name: TrimLog
DELETE FROM job_events WHERE job_id = ? AND kind = 'log' AND seq <= ?

-- name: Get
SELECT /*COLS*/ FROM jobs WHERE id = ?

-- List and Count get their WHERE from Filter.where: only the conditions
-- of the filter's set fields, so the planner sees the columns and walks the
-- index that matches (jobs_status, jobs_task_id, jobs_scheduled) newest
-- first. One fixed statement with "(? = '' OR status = ?)" for each field
-- hid them from it: every list walked the whole table, 30 ms at 100k jobs.
-- /*LIMIT*/ is "LIMIT ? OFFSET ?", after the WHERE's parameters.
-- name: List
SELECT /*COLS*/ FROM jobs /*WHERE*/ ORDER BY id DESC /*LIMIT*/

-- name: Count
SELECT COUNT(*) FROM jobs /*WHERE*/

-- name: CountPending
SELECT COUNT(*) FROM jobs WHERE status = 'pending'

-- name: Delete
DELETE FROM jobs WHERE id = ?

-- name: DeleteUnlessRunning
DELETE FROM jobs WHERE id = ? AND status <> 'running'

-- name: DeleteEvents
DELETE FROM job_events WHERE job_id = ?

-- name: ExpiredIDs
SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ? LIMIT 1000

-- name: TaskHasJob
SELECT COUNT(*) FROM jobs WHERE task_id = ?

-- Ready: due, and not held back by its task's concurrency limit.
-- name: CountReady
SELECT COUNT(*) FROM jobs j LEFT JOIN tasks t ON t.id = j.task_id
WHERE j.status = 'pending' AND j.run_after <= ?
  AND (t.conc_limit IS NULL
       OR t.conc_limit > (SELECT COUNT(*) FROM jobs r WHERE r.task_id = j.task_id AND r.status = 'running'))
