package sqlq

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// TestWarmWhileTxUsesCache: on a pool of one connection (SQLite's writer),
// a Warm waiting for the connection must not block a transaction holding it
// from reading the cache. Warm used to hold the cache's lock while it
// prepared, and the two waited for each other forever.
func TestWarmWhileTxUsesCache(t *testing.T) {
	pool, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	pool.SetMaxOpenConns(1)
	c := NewCache(pool)
	c.Warm("SELECT 1")
	tx, err := pool.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	warmed := make(chan struct{})
	go func() { defer close(warmed); c.Warm("SELECT 2") }()
	for deadline := time.Now().Add(5 * time.Second); pool.Stats().WaitCount == 0; { // Warm waits for the connection
		if time.Now().After(deadline) {
			t.Fatal("Warm never waited for the connection")
		}
		time.Sleep(time.Millisecond)
	}
	got := make(chan *sql.Stmt)
	go func() { got <- c.Get("SELECT 1") }()
	select {
	case st := <-got:
		if st == nil {
			t.Fatal("the warmed statement is missing")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Get blocked while Warm waited for the connection the transaction holds: deadlock")
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	<-warmed
	if c.Get("SELECT 2") == nil {
		t.Fatal("SELECT 2 not prepared once the connection was free")
	}
}
