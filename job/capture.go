package job

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"sync"
	"time"

	"github.com/servicekit/servicekit/internal/output"
)

// capture collects one attempt's output and progress and writes them as
// events in small batches: each line waits at most LogFlushDelay, and many
// lines cost one transaction. Memory and stored log stay bounded: the tails
// keep the last OutputLimit bytes per stream for the artifact, lines waiting
// to be written are capped, and the stored log events are trimmed from the
// oldest once they exceed the limit of both streams together.
type capture struct {
	s       *Scheduler
	jobID   string
	attempt int
	limit   int

	stdoutTail, stderrTail *output.Tail
	Stdout, Stderr         io.Writer

	mu           sync.Mutex
	pending      []json.RawMessage // encoded LogLines not yet stored
	pendingBytes int
	progress     *Progress
	timer        *time.Timer
	lastProgress *Progress // the last progress stored (the job row's), guarded by flushMu

	flushMu sync.Mutex // one flush at a time keeps event ids in order
	stored  []chunk    // log chunks in the database, oldest first
	size    int        // bytes in stored
}

type chunk struct {
	seq   int64
	bytes int
}

func newCapture(s *Scheduler, r *Record) *capture {
	c := &capture{s: s, jobID: r.ID, attempt: r.Attempt, limit: s.opt.OutputLimit}
	c.stdoutTail = output.NewTail(c.limit)
	c.stderrTail = output.NewTail(c.limit)
	c.Stdout = &streamWriter{tail: c.stdoutTail, lines: output.NewLines(0, func(l string) { c.addLine("stdout", l) })}
	c.Stderr = &streamWriter{tail: c.stderrTail, lines: output.NewLines(0, func(l string) { c.addLine("stderr", l) })}
	return c
}

// streamWriter feeds one stream to its tail and its line splitter. The
// mutex makes it safe for a function that writes from several goroutines.
type streamWriter struct {
	mu    sync.Mutex
	tail  *output.Tail
	lines *output.Lines
}

func (w *streamWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tail.Write(p)
	return w.lines.Write(p)
}

func (w *streamWriter) flush() {
	w.mu.Lock()
	w.lines.Flush()
	w.mu.Unlock()
}

func (c *capture) addLine(stream, line string) {
	b, _ := json.Marshal(LogLine{Stream: stream, Line: line})
	c.mu.Lock()
	c.pending = append(c.pending, b)
	c.pendingBytes += len(b)
	// Lines arriving faster than they can be stored: keep the newest, as
	// the stored log would drop the oldest anyway.
	for c.pendingBytes > 2*c.limit && len(c.pending) > 1 {
		c.pendingBytes -= len(c.pending[0])
		c.pending = c.pending[1:]
	}
	c.scheduleLocked()
	c.mu.Unlock()
}

func (c *capture) setProgress(p *Progress) {
	c.mu.Lock()
	c.progress = p
	c.scheduleLocked()
	c.mu.Unlock()
}

func (c *capture) scheduleLocked() {
	if c.timer == nil {
		c.timer = time.AfterFunc(c.s.opt.LogFlushDelay, func() { c.flush(context.Background()) })
	}
}

// close flushes partial lines and everything pending; it returns once all
// output is stored, so the finishing status event comes after the last line.
func (c *capture) close(ctx context.Context) {
	c.Stdout.(*streamWriter).flush()
	c.Stderr.(*streamWriter).flush()
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	c.flush(ctx)
}

func (c *capture) flush(ctx context.Context) {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	c.mu.Lock()
	lines, progress := c.pending, c.progress
	c.pending, c.pendingBytes, c.progress, c.timer = nil, 0, nil, nil
	c.mu.Unlock()
	if len(lines) == 0 && progress == nil {
		return
	}
	var data []byte
	if len(lines) > 0 {
		data = append(data, '[')
		for i, l := range lines {
			if i > 0 {
				data = append(data, ',')
			}
			data = append(data, l...)
		}
		data = append(data, ']')
	}
	var seq int64
	var trimTo int64
	var progressed bool
	err := c.s.do(ctx, func(tx *sql.Tx) error {
		seq, trimTo, progressed = 0, 0, false
		if len(lines) > 0 {
			err := c.s.db.QueryRowTx(ctx, tx, c.s.q.ReserveSeq, len(lines), c.jobID, c.attempt).Scan(&seq)
			if err == sql.ErrNoRows {
				return nil // no longer ours to write (canceled elsewhere or rescued)
			}
			if err != nil {
				return err
			}
			if _, err := c.s.db.ExecTx(ctx, tx, c.s.q.InsertEvent, c.jobID, seq, "log", len(lines), len(data), string(data)); err != nil {
				return err
			}
			trimTo = c.trimPoint(len(data))
			if trimTo > 0 {
				if _, err := c.s.db.ExecTx(ctx, tx, c.s.q.TrimLog, c.jobID, trimTo); err != nil {
					return err
				}
			}
		}
		if progress != nil {
			r, err := scanRecord(c.s.db.QueryRowTx(ctx, tx, c.s.q.SetProgress, jsonText(progress), c.jobID, c.attempt))
			if err == sql.ErrNoRows {
				return nil
			}
			if err != nil {
				return err
			}
			progressed = true
			return c.s.insertStatusEvent(ctx, tx, r)
		}
		return nil
	})
	if err != nil {
		c.s.log.Warn("job output not stored", "job_id", c.jobID, "error", err)
		return
	}
	if seq > 0 {
		c.commitChunk(seq, len(data), trimTo)
	}
	if progressed {
		c.lastProgress = progress
	}
	if seq > 0 || progressed {
		c.s.changed(c.jobID)
	}
}

// trimPoint returns the seq up to which stored chunks must be deleted so
// that, with a new chunk of n bytes, the stored log stays within both
// streams' limits; 0 when nothing needs to go.
func (c *capture) trimPoint(n int) int64 {
	size := c.size + n
	var to int64
	for i := 0; i < len(c.stored) && size > 2*c.limit; i++ {
		size -= c.stored[i].bytes
		to = c.stored[i].seq
	}
	return to
}

func (c *capture) commitChunk(seq int64, n int, trimTo int64) {
	c.stored = append(c.stored, chunk{seq: seq, bytes: n})
	c.size += n
	for len(c.stored) > 0 && trimTo > 0 && c.stored[0].seq <= trimTo {
		c.size -= c.stored[0].bytes
		c.stored = c.stored[1:]
	}
}
