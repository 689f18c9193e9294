package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/servicekit/servicekit/internal/dbtest"
	"github.com/servicekit/servicekit/store"
)

func recv(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("got signal %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("signal %q never arrived", want)
	}
}

func TestNotifierInProcess(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		n := db.Notifier()
		ch := make(chan string, 10)
		unsub := n.Subscribe("t", func(p string) { ch <- p })
		n.Publish("t", "one")
		recv(t, ch, "one") // delivered at once, in process
		unsub()
		n.Publish("t", "two")
		select {
		case p := <-ch:
			t.Fatalf("got %q after unsubscribing", p)
		case <-time.After(100 * time.Millisecond):
		}
	})
}

// TestNotifierAcrossProcesses: two handles on one PostgreSQL database (as
// two servers have) hear each other's signals, and never their own twice.
func TestNotifierAcrossProcesses(t *testing.T) {
	url := dbtest.PostgresURL(t)
	a, b := dbtest.Open(t, url), dbtest.Open(t, url)
	ctx := context.Background()
	fromA, fromB := make(chan string, 10), make(chan string, 10)
	a.Notifier().Subscribe("t", func(p string) { fromB <- p })
	b.Notifier().Subscribe("t", func(p string) { fromA <- p })
	if err := a.Notifier().Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Notifier().Ready(ctx); err != nil {
		t.Fatal(err)
	}
	a.Notifier().Publish("t", "hello from a")
	recv(t, fromB, "hello from a") // a's own subscriber, locally
	recv(t, fromA, "hello from a") // b's, through NOTIFY
	select {
	case p := <-fromB:
		t.Fatalf("a heard its own signal twice: %q", p)
	case <-time.After(200 * time.Millisecond):
	}
	// A schema of its own is a channel of its own: another schema's nodes hear nothing.
	other := dbtest.Open(t, dbtest.PostgresURL(t))
	heard := make(chan string, 1)
	other.Notifier().Subscribe("t", func(p string) { heard <- p })
	other.Notifier().Ready(ctx)
	b.Notifier().Publish("t", "only for this schema")
	recv(t, fromA, "only for this schema")
	select {
	case p := <-heard:
		t.Fatalf("another schema heard %q", p)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestNotifierReconnects: when the listening connection dies, the notifier
// reconnects by itself, calls the resync functions (signals may have been
// lost meanwhile), and signals flow again.
func TestNotifierReconnects(t *testing.T) {
	url := dbtest.PostgresURL(t)
	// No periodic resync during the test: the resync counted below must be
	// the reconnect's (a periodic one could come before the listener even
	// noticed its connection died, and the signal sent then would be lost).
	// Set before the notifiers start and restored after they stopped.
	every := store.ResyncEvery
	store.ResyncEvery = time.Hour
	t.Cleanup(func() { store.ResyncEvery = every })
	a, b := dbtest.Open(t, url), dbtest.Open(t, url)
	ctx := context.Background()
	got := make(chan string, 10)
	var mu sync.Mutex
	resyncs := 0
	b.Notifier().Subscribe("t", func(p string) { got <- p })
	b.Notifier().OnResync(func() { mu.Lock(); resyncs++; mu.Unlock() })
	if err := b.Notifier().Ready(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	before := resyncs
	mu.Unlock()
	// Kill every LISTEN connection of this database but our own session.
	if _, err := a.W.ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'`); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := resyncs
		mu.Unlock()
		if n > before && b.Notifier().Listening() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the notifier did not reconnect and resync")
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.Notifier().Publish("t", "after the reconnect")
	recv(t, got, "after the reconnect")
}

// TestConcurrentMigrations: servers started together on an empty database
// must all come up. They once raced in CREATE TABLE (duplicate key
// pg_type_typname_nsp_index, seen with three real servers, not every time);
// a session advisory lock now makes each wait its turn. (This in-process
// form did not reproduce the race without the lock here; the real-process
// suite in clustertest starts whole servers together.)
func TestConcurrentMigrations(t *testing.T) {
	for round := range 3 {
		url := dbtest.PostgresURL(t)
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				db, err := store.Open(context.Background(), url)
				if err != nil {
					errs <- err
					return
				}
				defer db.Close()
				errs <- db.Migrate(context.Background())
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
}
