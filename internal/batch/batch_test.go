package batch_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servicekit/servicekit/internal/batch"
	"github.com/servicekit/servicekit/store"
)

func openDB(t *testing.T) *store.DB {
	db, err := store.Open(context.Background(), "sqlite:///"+filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.W.Exec("CREATE TABLE t (n INTEGER)"); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestGroupsAndIsolates: many concurrent ops share few transactions, and
// one failing op fails alone (its batch is retried op by op).
func TestGroupsAndIsolates(t *testing.T) {
	db := openDB(t)
	var txs atomic.Int32
	inTx := func(ctx context.Context, fn func(tx *sql.Tx) error) error {
		txs.Add(1)
		return db.InTx(ctx, fn)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := batch.New(ctx, inTx, 256, 1)
	var wg sync.WaitGroup
	errs := make([]error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.Do(ctx, func(tx *sql.Tx) error {
				if i == 7 {
					return errors.New("op 7 fails")
				}
				_, err := tx.Exec("INSERT INTO t (n) VALUES (?)", i)
				return err
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if (i == 7) != (err != nil) {
			t.Fatalf("op %d: %v", i, err)
		}
	}
	var n int
	db.R.QueryRow("SELECT COUNT(*) FROM t").Scan(&n)
	if n != 199 {
		t.Fatalf("%d rows, want 199", n)
	}
	t.Logf("200 ops in %d transactions", txs.Load())
}

// TestDoAfterStopFailsAtOnce: Do used to block forever when the batcher had
// stopped (the send into the buffered queue succeeded and nobody answered).
func TestDoAfterStopFailsAtOnce(t *testing.T) {
	db := openDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	b := batch.New(ctx, db.InTx, 256, 2)
	if err := b.Do(context.Background(), func(tx *sql.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		done := make(chan error, 1)
		go func() { done <- b.Do(context.Background(), func(tx *sql.Tx) error { return nil }) }()
		select {
		case err := <-done:
			if errors.Is(err, batch.ErrStopped) {
				return
			}
			if err != nil {
				t.Fatalf("Do after stop: %v", err)
			}
			// Ran before the writers noticed the stop; try again.
		case <-time.After(2 * time.Second):
			t.Fatal("Do after stop blocked")
		}
		if time.Now().After(deadline) {
			t.Fatal("the batcher never reported it stopped")
		}
	}
}
