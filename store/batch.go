package store

import (
	"context"
	"database/sql"
	"errors"
)

// Batcher groups small write transactions from many goroutines into one
// database transaction (group commit). A caller's op runs as soon as the
// writer is free, together with every op that queued up meanwhile, so an
// idle system pays no added latency while a busy one pays one commit for many
// jobs instead of one each. Durability is unchanged: Do returns only after
// the transaction holding the op has committed.
type Batcher struct {
	db  *DB
	ops chan *batchOp
	max int
}

type batchOp struct {
	ctx  context.Context
	fn   func(tx *sql.Tx) error
	done chan error
}

// NewBatcher starts a batcher that commits at most maxOps ops per
// transaction. It runs until ctx is canceled.
func NewBatcher(ctx context.Context, db *DB, maxOps int) *Batcher {
	b := &Batcher{db: db, ops: make(chan *batchOp, 4096), max: maxOps}
	go b.loop(ctx)
	return b
}

// ErrBatcherStopped is returned by Do after the batcher's context ended.
var ErrBatcherStopped = errors.New("store: write batcher stopped")

// Do runs fn inside a write transaction shared with other queued ops and
// waits for that transaction to commit. fn must only touch the database
// through tx and must be safe to run a second time: when any op in a batch
// fails, the batch is rolled back and each op is retried alone, so one bad
// op cannot fail its neighbours.
func (b *Batcher) Do(ctx context.Context, fn func(tx *sql.Tx) error) error {
	op := &batchOp{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case b.ops <- op:
	case <-ctx.Done():
		return ctx.Err()
	}
	// Wait for the result even if ctx ends: the op may already be in a
	// committing transaction, and the caller must know whether it landed.
	return <-op.done
}

func (b *Batcher) loop(ctx context.Context) {
	batch := make([]*batchOp, 0, b.max)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			b.drain()
			return
		case op := <-b.ops:
			batch = append(batch, op)
		}
	fill:
		for len(batch) < b.max {
			select {
			case op := <-b.ops:
				batch = append(batch, op)
			default:
				break fill
			}
		}
		b.run(batch)
	}
}

// drain fails every op still queued once the batcher stops.
func (b *Batcher) drain() {
	for {
		select {
		case op := <-b.ops:
			op.done <- ErrBatcherStopped
		default:
			return
		}
	}
}

func (b *Batcher) run(batch []*batchOp) {
	if len(batch) == 1 {
		op := batch[0]
		op.done <- b.db.InTx(context.WithoutCancel(op.ctx), op.fn)
		return
	}
	err := b.db.InTx(context.Background(), func(tx *sql.Tx) error {
		for _, op := range batch {
			if err := op.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		for _, op := range batch {
			op.done <- nil
		}
		return
	}
	for _, op := range batch {
		op.done <- b.db.InTx(context.WithoutCancel(op.ctx), op.fn)
	}
}
