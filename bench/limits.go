package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/servicekit/servicekit/store"
)

// BareCommitter performs the cheapest durable write servicekit could make:
// one small INSERT in its own transaction, on a database opened by
// store.Open, so the pragmas (WAL, synchronous=NORMAL, busy timeout), the
// single-connection writer pool and the driver are exactly the server's.
// A job needs at least one such commit to be stored and another to be
// finished, so its rate and latency bound what the job engine can reach.
type BareCommitter struct {
	db      *store.DB
	payload string
}

// NewBareCommitter creates a fresh database file in dir.
func NewBareCommitter(ctx context.Context, dir string) (*BareCommitter, error) {
	abs, err := filepath.Abs(filepath.Join(dir, "bare-commit.db"))
	if err != nil {
		return nil, err
	}
	// An absolute path makes "sqlite:///" + abs the sqlite:////abs form.
	db, err := store.Open(ctx, "sqlite:///"+abs)
	if err != nil {
		return nil, err
	}
	if _, err := db.W.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS bare (id INTEGER PRIMARY KEY, data TEXT NOT NULL)`); err != nil {
		db.Close()
		return nil, err
	}
	// About the size of a stored job row; the row size matters little
	// next to the commit itself, but an empty row would flatter SQLite.
	return &BareCommitter{db: db, payload: strings.Repeat("x", 256)}, nil
}

// Commit inserts one row in one write transaction.
func (c *BareCommitter) Commit(ctx context.Context) error {
	tx, err := c.db.W.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO bare (data) VALUES (?)`, c.payload); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Close closes the database.
func (c *BareCommitter) Close() error { return c.db.Close() }

// Rate commits back to back for d and returns commits per second and the
// mean time of one commit.
func (c *BareCommitter) Rate(ctx context.Context, d time.Duration) (float64, time.Duration, error) {
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		if err := c.Commit(ctx); err != nil {
			return 0, 0, err
		}
		n++
	}
	el := time.Since(start)
	return float64(n) / el.Seconds(), el / time.Duration(n), nil
}

// SQLiteCommitRate measures BareCommitter's rate for d on a fresh
// database in a new temporary directory under dir ("" for the default).
func SQLiteCommitRate(ctx context.Context, dir string, d time.Duration) (float64, time.Duration, error) {
	tmp, err := os.MkdirTemp(dir, "skbench-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(tmp)
	c, err := NewBareCommitter(ctx, tmp)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	return c.Rate(ctx, d)
}

// ForkExec runs `/bin/sh -c true` once: the least a shell job can cost.
// servicekit's runner also runs commands through /bin/sh -c, so the two
// differ only by what the service adds.
func ForkExec() error {
	return exec.Command("/bin/sh", "-c", "true").Run()
}

// ForkExecRate runs ForkExec on workers goroutines for d and returns runs
// per second. Give it the server's job concurrency: that is how many shells
// the server may have in flight, and on a small machine fork/exec scales far
// from linearly with it.
func ForkExecRate(ctx context.Context, workers int, d time.Duration) (float64, error) {
	var n atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range max(workers, 1) {
		wg.Go(func() {
			for ctx.Err() == nil && time.Since(start) < d {
				if err := ForkExec(); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return 0, fmt.Errorf("fork/exec /bin/sh: %w", firstErr)
	}
	return float64(n.Load()) / time.Since(start).Seconds(), nil
}

// Mem is a process's resident memory as the kernel reports it.
type Mem struct {
	RSS  int64 // VmRSS: resident now, bytes
	Peak int64 // VmHWM: the most it was ever resident, bytes
}

// ReadMem reads VmRSS and VmHWM from /proc/PID/status (Linux only). RSS is
// what the target is about; the peak shows whether start-up (migrations,
// first requests) left the process bigger than it needs to be when idle.
func ReadMem(pid int) (Mem, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return Mem{}, err
	}
	defer f.Close()
	var m Mem
	found := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return Mem{}, fmt.Errorf("/proc/%d/status %s: %w", pid, key, err)
		}
		if key == "VmRSS" {
			m.RSS, found = kb<<10, true
		} else {
			m.Peak = kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		return Mem{}, err
	}
	if !found {
		return Mem{}, errors.New("no VmRSS in /proc/" + strconv.Itoa(pid) + "/status (a kernel thread or a zombie?)")
	}
	return m, nil
}

// MiB formats bytes as mebibytes.
func MiB(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
