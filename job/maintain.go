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
)

// maintain renews this node's leases, picks up cancels asked of it through
// the database, rescues jobs of dead nodes, and deletes old finished jobs.
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
			if err := s.rescue(ctx, false); err != nil && ctx.Err() == nil {
				s.log.Warn("rescue jobs", "error", err)
			}
		case <-retention.C:
			s.cleanup(ctx)
		}
	}
}

// RenewLeases extends the lease of every job running on this node, in one
// statement, and cancels those another node asked to cancel.
func (s *Scheduler) renewLeases(ctx context.Context) error {
	if _, err := s.db.Exec(ctx, s.q["RenewLeases"], time.Now().Add(s.opt.Lease).UnixMilli(), s.opt.Node); err != nil {
		return err
	}
	return s.pickUpCancels(ctx)
}

// pickUpCancels cancels local runs whose cancel_requested flag is set.
func (s *Scheduler) pickUpCancels(ctx context.Context) error {
	rows, err := s.db.Query(ctx, s.q["CancelRequestedHere"], s.opt.Node)
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
		s.cancelLocal(id, cancelCause(level))
	}
	return rows.Err()
}

// rescue finds running jobs whose node is gone and ends their attempt:
// back to pending if attempts remain, else failed. A node is gone when its
// lease expired, or (at start-up) when it is this node's own id from an
// earlier life, or another process on this host that no longer exists.
func (s *Scheduler) rescue(ctx context.Context, startup bool) error {
	type victim struct {
		id      string
		attempt int
		node    string
	}
	var victims []victim
	now := time.Now().UnixMilli()
	rows, err := s.db.Query(ctx, s.q["RunningElsewhere"], s.opt.Node)
	if err != nil {
		return err
	}
	for rows.Next() {
		var v victim
		var lease sql.NullInt64
		var node sql.NullString
		if err := rows.Scan(&v.id, &v.attempt, &node, &lease); err != nil {
			rows.Close()
			return err
		}
		v.node = node.String
		if !lease.Valid || lease.Int64 < now || deadLocalProcess(v.node) {
			victims = append(victims, v)
		}
	}
	rows.Close()
	if startup {
		// Jobs under our own node id were left by an earlier process with our pid.
		rows, err := s.db.Query(ctx, s.q["RunningHere"], s.opt.Node)
		if err != nil {
			return err
		}
		for rows.Next() {
			v := victim{node: s.opt.Node}
			if err := rows.Scan(&v.id, &v.attempt); err != nil {
				rows.Close()
				return err
			}
			victims = append(victims, v)
		}
		rows.Close()
	}
	for _, v := range victims {
		r, err := s.Get(ctx, v.id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if r.Status != Running || r.Attempt != v.attempt {
			continue
		}
		out := Outcome{Err: fmt.Errorf("node %s stopped while running the job (lease lost)", v.node)}
		retry := r.Attempt < r.MaxAttempts
		status := Failed
		if err := s.endAttempt(ctx, r, status, out, retry, 0, nil); err != nil {
			return err
		}
		s.log.Warn("rescued job of a dead node", "job_id", r.ID, "node", v.node, "retry", retry)
		s.hub.notify(r.ID)
		if !retry {
			s.opt.Observer.Finished(r, Failed, 0)
		}
	}
	if len(victims) > 0 {
		s.backlog.Store(true) // requeued jobs go before new submits
		s.kick()
	}
	return nil
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

// cleanup deletes finished jobs (and their events) older than the retention.
func (s *Scheduler) cleanup(ctx context.Context) {
	if s.opt.Retention < 0 {
		return
	}
	cutoff := time.Now().Add(-s.opt.Retention).UnixMilli()
	for ctx.Err() == nil {
		rows, err := s.db.Query(ctx, s.q["ExpiredIDs"], cutoff)
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
		err = s.batch.Do(ctx, func(tx *sql.Tx) error {
			for _, id := range idList {
				if _, err := s.db.ExecTx(ctx, tx, s.q["DeleteEvents"], id); err != nil {
					return err
				}
				if _, err := s.db.ExecTx(ctx, tx, s.q["Delete"], id); err != nil {
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
