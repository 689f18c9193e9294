// Package batch groups small write transactions from many goroutines into
// few database transactions (group commit). It is machinery of the job
// engine: library users never see it.
package batch

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// Batcher groups ops into shared transactions. A caller's op runs as soon
// as a writer is free (on the caller's goroutine when one is free at
// once), together with every op that queued up meanwhile, so
// an idle system pays no added latency while a busy one pays one commit for
// many jobs instead of one each. Durability is unchanged: Do returns only
// after the transaction holding the op has committed.
//
// Writers is how many transactions may be in flight at once: 1 suits
// SQLite's single writer; PostgreSQL commits several side by side, and one
// writer would cap a node at one commit's latency per batch.
type Batcher struct {
	inTx    func(ctx context.Context, fn func(tx *sql.Tx) error) error
	ops     chan *op
	max     int
	stopped chan struct{} // closed once every writer has returned
	writers sync.WaitGroup
	// slots holds one token per transaction in flight (Writers of them).
	// A caller that finds one free runs its op, and whatever queued, on
	// its own goroutine: handing an op to an idle writer goroutine and
	// back costs two wake-ups, each dear on a VM whose idle vCPUs sleep.
	slots chan struct{}
	ctx   context.Context
}

type op struct {
	ctx  context.Context
	fn   func(tx *sql.Tx) error
	done chan error
}

// ErrStopped is returned by Do after the batcher's context ended.
var ErrStopped = errors.New("write batcher stopped (shutting down)")

// New starts a batcher whose writers commit at most maxOps ops per
// transaction through inTx. It runs until ctx is canceled.
func New(ctx context.Context, inTx func(ctx context.Context, fn func(tx *sql.Tx) error) error, maxOps, writers int) *Batcher {
	writers = max(writers, 1)
	b := &Batcher{inTx: inTx, ops: make(chan *op, 4096), max: maxOps, stopped: make(chan struct{}),
		slots: make(chan struct{}, writers), ctx: ctx}
	b.writers.Add(writers)
	for range writers {
		go func() { defer b.writers.Done(); b.loop(ctx) }()
	}
	go func() {
		b.writers.Wait()
		b.drain()
		close(b.stopped)
		b.drain() // ops that slipped in while closing
	}()
	return b
}

// Do runs fn inside a write transaction shared with other queued ops and
// waits for that transaction to commit. fn must only touch the database
// through tx and must be safe to run a second time: when any op in a batch
// fails, the batch is rolled back and each op is retried alone, so one bad
// op cannot fail its neighbours. After the batcher stopped, Do returns
// ErrStopped at once.
func (b *Batcher) Do(ctx context.Context, fn func(tx *sql.Tx) error) error {
	o := &op{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case <-b.stopped:
		return ErrStopped
	default:
	}
	if b.ctx.Err() != nil {
		return ErrStopped
	}
	select {
	case b.slots <- struct{}{}: // a transaction slot is free: commit here
		batch := b.fill(append(make([]*op, 0, 8), o))
		b.run(batch)
		<-b.slots
		return <-o.done
	default:
	}
	select {
	case b.ops <- o:
	case <-b.stopped:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	// Wait for the result even if ctx ends: the op may already be in a
	// committing transaction, and the caller must know whether it landed.
	select {
	case err := <-o.done:
		return err
	case <-b.stopped:
		// Every writer returned and the queue was drained: if our op ran,
		// its answer is already waiting.
		select {
		case err := <-o.done:
			return err
		default:
			return ErrStopped
		}
	}
}

func (b *Batcher) loop(ctx context.Context) {
	batch := make([]*op, 0, b.max)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return
		case o := <-b.ops:
			batch = append(batch, o)
		}
		b.slots <- struct{}{}
		b.run(b.fill(batch))
		<-b.slots
	}
}

// fill adds the ops queued meanwhile, up to the batch size.
func (b *Batcher) fill(batch []*op) []*op {
	for len(batch) < b.max {
		select {
		case o := <-b.ops:
			batch = append(batch, o)
		default:
			return batch
		}
	}
	return batch
}

// drain fails every op still queued once the writers stopped.
func (b *Batcher) drain() {
	for {
		select {
		case o := <-b.ops:
			o.done <- ErrStopped
		default:
			return
		}
	}
}

func (b *Batcher) run(batch []*op) {
	if len(batch) == 1 {
		o := batch[0]
		o.done <- b.inTx(context.WithoutCancel(o.ctx), o.fn)
		return
	}
	err := b.inTx(context.Background(), func(tx *sql.Tx) error {
		for _, o := range batch {
			if err := o.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		for _, o := range batch {
			o.done <- nil
		}
		return
	}
	for _, o := range batch {
		o.done <- b.inTx(context.WithoutCancel(o.ctx), o.fn)
	}
}
