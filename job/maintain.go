package job

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/servicekit/servicekit/internal/ids"
	"github.com/servicekit/servicekit/store"
)

// isLockTimeout reports PostgreSQL's lock_not_available (55P03).
func isLockTimeout(err error) bool {
	return err != nil && strings.Contains(err.Error(), "55P03")
}

// maintain renews this node's leases and heartbeat, carries out cancels
// asked of it through the database, rescues jobs of dead nodes, and deletes
// old finished jobs.
func (s *Scheduler) maintain(ctx context.Context) {
	lease := time.NewTicker(s.opt.Lease / 3)
	defer lease.Stop()
	retention := time.NewTicker(time.Hour)
	defer retention.Stop()
	s.cleanup(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-lease.C:
			if err := s.renewLeases(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("renew job leases", "error", err)
			}
			s.rescueAsync(ctx)
		case <-s.rescueNow:
			s.rescueAsync(ctx)
		case <-s.renewNow:
			if err := s.renewLeases(ctx); err != nil && ctx.Err() == nil {
				s.log.Debug("renew job leases (asked by the fenced dispatcher)", "error", err)
			}
		case <-retention.C:
			s.cleanup(ctx)
		}
	}
}

// renewLeases extends the lease of every job running on this node and the
// node's heartbeat, in one transaction whose answer says which runs the
// node still holds: a run missing from it was taken away (rescued by
// another node while this one could not renew, or deleted) and is stopped
// here; a run another node asked to cancel is canceled.
func (s *Scheduler) renewLeases(ctx context.Context) error {
	began := time.Now()
	ctx, cancel := context.WithTimeout(ctx, s.opt.Lease/4)
	defer cancel()
	type held struct {
		attempt, level int
		started        int64
	}
	heldRuns := map[string]held{}
	// Its own transaction, not the write batcher's: a renewal must not wait
	// behind other writes, and its timeout must hold.
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		clear(heldRuns)
		if err := s.upsertNode(ctx, tx, began); err != nil {
			return err
		}
		rows, err := s.db.QueryTx(ctx, tx, s.q.RenewLeases, began.Add(s.opt.Lease).UnixMilli(), s.opt.Node)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var h held
			var started sql.NullInt64
			if err := rows.Scan(&id, &h.attempt, &h.level, &started); err != nil {
				return err
			}
			h.started = started.Int64
			heldRuns[id] = h
		}
		return rows.Err()
	})
	if err != nil {
		return err
	}
	s.renewedAt.Store(began.UnixMilli())
	if s.fenced.CompareAndSwap(true, false) {
		s.log.Info("lease renewal works again; this node takes jobs again")
		s.kick()
	}
	s.mu.Lock()
	var lost []*active
	var lostIDs []string
	for id, a := range s.active {
		h, ok := heldRuns[id]
		switch {
		case !ok || h.attempt != a.attempt:
			// Started after the renewal read the table is the one harmless case.
			if a.since.Before(began) && !a.ending.Load() {
				lost, lostIDs = append(lost, a), append(lostIDs, id)
			}
		case h.level > 0:
			a.cancel(cancelCause(h.level))
		}
	}
	var orphans []string
	for id, h := range heldRuns {
		// A row started well before this renewal with no run here: its run
		// ended but the end could not be stored. (A run that just started
		// may not be registered yet; it is younger than that.)
		if _, ok := s.active[id]; !ok && h.started < began.Add(-s.opt.Lease/3).UnixMilli() {
			orphans = append(orphans, id)
		}
	}
	s.mu.Unlock()
	for i, a := range lost {
		s.log.Warn("job run lost to another node (lease expired and rescued); stopping it here", "job_id", lostIDs[i], "attempt", a.attempt)
		a.cancel(errLost)
	}
	for _, id := range orphans {
		if _, err := s.db.Exec(ctx, s.q.ReleaseLease, id, s.opt.Node, heldRuns[id].attempt); err == nil {
			s.log.Warn("job's end could not be stored; giving up its lease so a rescue ends it", "job_id", id)
			s.kickRescue()
		}
	}
	return nil
}

// rescueAsync starts a rescue pass unless one is under way. A rescue can
// wait on row locks a cut-off node left behind; it must never hold up this
// node's own renewals.
func (s *Scheduler) rescueAsync(ctx context.Context) {
	if !s.rescuing.CompareAndSwap(false, true) {
		return
	}
	s.loops.Add(1)
	go func() {
		defer s.loops.Done()
		defer s.rescuing.Store(false)
		if err := s.rescue(ctx, false); err != nil && ctx.Err() == nil {
			s.log.Warn("rescue jobs", "error", err)
		}
	}()
}

func (s *Scheduler) isActive(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.active[id]
	return ok
}

// kickRescue asks for a rescue pass now rather than at the next tick.
func (s *Scheduler) kickRescue() {
	select {
	case s.rescueNow <- struct{}{}:
	default:
	}
}

func (s *Scheduler) upsertNode(ctx context.Context, tx *sql.Tx, now time.Time) error {
	_, err := s.db.ExecTx(ctx, tx, s.q.UpsertNode, s.opt.Node, s.host, os.Getpid(), s.opt.Version,
		s.started.UnixMilli(), now.UnixMilli(), s.opt.Lease.Milliseconds())
	return err
}

// heartbeat registers this node (at start-up, before anything else runs).
func (s *Scheduler) heartbeat(ctx context.Context) error {
	now := time.Now()
	err := s.do(ctx, func(tx *sql.Tx) error { return s.upsertNode(ctx, tx, now) })
	if err == nil {
		s.renewedAt.Store(now.UnixMilli())
	}
	return err
}

// fence stops every run of this node once its leases may no longer be
// renewed in time: after Lease/2 without a successful renewal (the node is
// cut off from the database, or the database is down) each run is canceled,
// and its processes are killed within Run.KillGrace (Lease/4), so all are
// gone before the leases expire at Lease and another node may rescue the
// jobs. No job ever runs on two nodes at once.
func (s *Scheduler) fence(ctx context.Context) {
	t := time.NewTicker(max(s.opt.Lease/20, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		renewed := time.UnixMilli(s.renewedAt.Load())
		since := time.Since(renewed)
		if since < s.opt.Lease/2 {
			continue
		}
		// A run's lease was set when it started, and renewed with the rest
		// after: it is at risk once the later of the two is Lease/2 ago.
		n := 0
		s.mu.Lock()
		for _, a := range s.active {
			if time.Since(later(a.since, renewed)) >= s.opt.Lease/2 {
				a.cancel(errFenced)
				n++
			}
		}
		s.mu.Unlock()
		if n > 0 && s.fenced.CompareAndSwap(false, true) {
			s.log.Error("cannot renew job leases: stopping this node's runs before their leases expire",
				"runs", n, "last_renewal_ago", since.Round(time.Millisecond), "lease", s.opt.Lease)
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// pickUpCancels cancels local runs whose cancel_requested flag is set.
func (s *Scheduler) pickUpCancels(ctx context.Context) error {
	rows, err := s.db.Query(ctx, s.q.CancelRequestedHere, s.opt.Node)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var level int
		if err := rows.Scan(&id, &level); err != nil {
			return err
		}
		s.cancelLocal(id, 0, cancelCause(level))
	}
	return rows.Err()
}

// victim is a running job whose node is gone.
type victim struct {
	id      string
	attempt int
	node    string
	dead    bool // its node is a dead process on this host: no lease check needed
}

// rescue ends the attempts of jobs whose node is gone: back to pending if
// attempts remain (and no cancel was asked), else failed (or canceled, or
// deleted, as asked). A node is gone when its lease expired, or (at
// start-up) when it is this node's own id from an earlier life, or another
// process on this host that no longer exists. Each rescue is one
// conditional statement that re-checks the expiry, so a rescue racing a
// renewal leaves the live run alone, and two nodes rescuing the same job
// change it once.
func (s *Scheduler) rescue(ctx context.Context, startup bool) error {
	now := time.Now()
	var victims []victim
	rows, err := s.db.Query(ctx, s.q.Expired, now.UnixMilli())
	if err != nil {
		return err
	}
	for rows.Next() {
		var v victim
		var node sql.NullString
		if err := rows.Scan(&v.id, &v.attempt, &node); err != nil {
			rows.Close()
			return err
		}
		v.node = node.String
		// This node's own rows are victims only without a live run here
		// (at start-up, or when the end of a run could not be stored).
		if v.node != s.opt.Node || startup || !s.isActive(v.id) {
			victims = append(victims, v)
		}
	}
	rows.Close()
	if startup {
		more, err := s.deadLocalRuns(ctx)
		if err != nil {
			return err
		}
		victims = append(victims, more...)
	}
	rescued := 0
	for _, v := range victims {
		ok, err := s.rescueOne(ctx, v, now)
		if err != nil {
			return err
		}
		if ok {
			rescued++
		}
	}
	if rescued > 0 {
		s.backlog.Store(true) // requeued jobs go before new submits
		s.kick()
		s.notify.PublishRemote(topicReady, "")
	}
	return nil
}

// deadLocalRuns lists the running jobs of nodes that were processes on
// this host and are gone: this node's own id from an earlier life (same
// pid) or a pid that no longer exists.
func (s *Scheduler) deadLocalRuns(ctx context.Context) ([]victim, error) {
	rows, err := s.db.Query(ctx, s.q.RunningNodes)
	if err != nil {
		return nil, err
	}
	var dead []string
	for rows.Next() {
		var node sql.NullString
		if err := rows.Scan(&node); err != nil {
			rows.Close()
			return nil, err
		}
		if node.String == s.opt.Node || deadLocalProcess(node.String) {
			dead = append(dead, node.String)
		}
	}
	rows.Close()
	var out []victim
	for _, n := range dead {
		rows, err := s.db.Query(ctx, s.q.RunningOn, n)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			v := victim{dead: true}
			if err := rows.Scan(&v.id, &v.attempt, &v.node); err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, v)
		}
		rows.Close()
	}
	return out, nil
}

// rescueOne ends one dead attempt; false when the job was no longer that
// attempt or its lease was renewed meanwhile.
func (s *Scheduler) rescueOne(ctx context.Context, v victim, now time.Time) (bool, error) {
	deadNode := ""
	if v.dead {
		deadNode = v.node
		s.sweep(v) // its process is gone for certain: nothing live is touched
	}
	nowMS := now.UnixMilli()
	msg := fmt.Sprintf("node %s stopped while running the job (lease lost)", v.node)
	var rec *Record
	// Its own short transaction: on PostgreSQL the rows of a node cut off
	// mid-transaction stay locked until the server aborts that transaction
	// (idle_in_transaction_session_timeout, see store.Open); waiting on them
	// is bounded, and the rescue is simply tried again at the next tick.
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		rec = nil
		if s.db.Dialect == store.Postgres {
			if _, err := tx.ExecContext(ctx, "SET LOCAL lock_timeout = '500ms'"); err != nil {
				return err
			}
		}
		r, err := scanRecord(s.db.QueryRowTx(ctx, tx, s.q.RescueRequeue, nowMS, msg, v.id, v.attempt, nowMS, deadNode))
		if err == nil {
			rec = r
			return s.insertStatusEvent(ctx, tx, r)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		artID := ids.New()
		r, err = scanRecord(s.db.QueryRowTx(ctx, tx, s.q.RescueEnd, errCanceled.Error(), msg, nowMS, artID, v.id, v.attempt, nowMS, deadNode))
		if errors.Is(err, sql.ErrNoRows) {
			return nil // renewed, finished or rescued by another node meanwhile
		}
		if err != nil {
			return err
		}
		rec = r
		out := Outcome{Err: errors.New(*r.Error)}
		if r.Status == Canceled && r.cancelLevel == deleteRequested {
			out.Err = errDeleted
		}
		if err := s.writeArtifact(ctx, tx, r, artID, out, nil, now); err != nil {
			return err
		}
		if r.Status == Canceled && r.cancelLevel == deleteRequested {
			return s.deleteTx(ctx, tx, r.ID)
		}
		return s.insertStatusEvent(ctx, tx, r)
	})
	if isLockTimeout(err) {
		s.log.Info("rescue waits for a lock held by a cut-off node's open transaction; will retry", "job_id", v.id)
		return false, nil
	}
	if err != nil || rec == nil {
		return false, err
	}
	s.log.Warn("rescued job of a dead node", "job_id", rec.ID, "node", v.node, "attempt", v.attempt, "now", rec.Status)
	if !v.dead && rec.Status.Terminal() {
		s.sweep(v)
	}
	s.changed(rec.ID)
	s.limitFreed(rec)
	if rec.Status.Terminal() {
		s.opt.Observer.Finished(rec, rec.Status, 0)
		s.logEnd(rec, 0)
	}
	return true, nil
}

// StraySweeper is implemented by an Executor that can find and kill what
// a dead attempt left running on this host (the task package's executor
// kills the processes marked with the job's id). A rescue calls it before
// its statement when the attempt's process is known dead (at start-up:
// this node's earlier life, or a pid that is gone) — so the retry that
// follows never runs beside its remains — and otherwise only once the job
// ended for good: an owner that is alive (and renewed in time) keeps its
// run, and a retry that another node may already run is not touched.
type StraySweeper interface {
	KillStrays(jobID string) (killed int, err error)
}

// sweep kills what a dead attempt of this host left running.
func (s *Scheduler) sweep(v victim) {
	sw, ok := s.exec.(StraySweeper)
	if !ok || !strings.HasPrefix(v.node, s.host+"-") {
		return
	}
	n, err := sw.KillStrays(v.id)
	switch {
	case err != nil:
		s.log.Warn("kill what a dead attempt left running", "job_id", v.id, "node", v.node, "error", err)
	case n > 0:
		s.log.Warn("killed processes a dead attempt left running", "job_id", v.id, "node", v.node, "processes", n)
	}
}

// Node is one server process sharing the database, from the node registry.
type Node struct {
	ID        string    `json:"id"`
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
	LastSeen  time.Time `json:"last_seen"`
}

// Nodes lists the live nodes: those whose heartbeat is younger than their lease.
func (s *Scheduler) Nodes(ctx context.Context) ([]Node, error) {
	rows, err := s.db.Query(ctx, s.q.LiveNodes, time.Now().UnixMilli())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Node{}
	for rows.Next() {
		var n Node
		var started, seen, lease int64
		if err := rows.Scan(&n.ID, &n.Host, &n.PID, &n.Version, &started, &seen, &lease); err != nil {
			return nil, err
		}
		n.StartedAt, n.LastSeen = msTime(started), msTime(seen)
		out = append(out, n)
	}
	return out, rows.Err()
}

// deadLocalProcess reports whether node names a process on this host
// (hostname-pid) that no longer exists.
func deadLocalProcess(node string) bool {
	host, _ := os.Hostname()
	i := strings.LastIndexByte(node, '-')
	if i < 0 || node[:i] != host {
		return false
	}
	pid, err := strconv.Atoi(node[i+1:])
	if err != nil || pid <= 0 {
		return false
	}
	if pid == os.Getpid() {
		return false
	}
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return true
	}
	// A killed process nobody reaped yet is a zombie: it answers signals but runs nothing.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] == 'Z'
	}
	return false
}

// cleanup deletes finished jobs (and their events) older than the
// retention, and nodes not seen for a day.
func (s *Scheduler) cleanup(ctx context.Context) {
	s.db.Exec(ctx, s.q.PurgeNodes, time.Now().Add(-24*time.Hour).UnixMilli())
	if s.opt.Retention < 0 {
		return
	}
	cutoff := time.Now().Add(-s.opt.Retention).UnixMilli()
	for ctx.Err() == nil {
		rows, err := s.db.Query(ctx, s.q.ExpiredIDs, cutoff)
		if err != nil {
			s.log.Warn("retention", "error", err)
			return
		}
		var idList []string
		for rows.Next() {
			var id string
			if rows.Scan(&id) == nil {
				idList = append(idList, id)
			}
		}
		rows.Close()
		if len(idList) == 0 {
			return
		}
		err = s.do(ctx, func(tx *sql.Tx) error {
			for _, id := range idList {
				if err := s.deleteTx(ctx, tx, id); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			s.log.Warn("retention", "error", err)
			return
		}
		s.log.Info("deleted finished jobs past retention", "count", len(idList))
	}
}
