package store

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache keeps one prepared statement per query text and pool. The
// SQLite driver would otherwise parse and plan every statement on every
// call, which cost a third of the CPU of a busy server; database/sql keeps
// the statement prepared on each connection it is used on.
type stmtCache struct {
	pool *sql.DB
	mu   sync.RWMutex
	m    map[string]*sql.Stmt
}

func newStmtCache(pool *sql.DB) *stmtCache {
	return &stmtCache{pool: pool, m: map[string]*sql.Stmt{}}
}

// get returns the prepared statement of query, or nil if it was never
// prepared. It never prepares: preparing needs a free connection, and the
// writer pool's only connection may be held by the very transaction asking,
// which would deadlock. Statements are prepared up front by warm.
func (c *stmtCache) get(_ context.Context, query string) (*sql.Stmt, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[query], nil
}

// warm prepares queries not yet prepared.
func (c *stmtCache) warm(queries Queries) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, q := range queries {
		if c.m[q] != nil {
			continue
		}
		st, err := c.pool.Prepare(q)
		if err != nil {
			return err
		}
		c.m[q] = st
	}
	return nil
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
	c.m = map[string]*sql.Stmt{}
}

// ExecTx runs a prepared write statement inside tx.
func (db *DB) ExecTx(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	st, _ := db.wst.get(ctx, query)
	if st == nil {
		return tx.ExecContext(ctx, query, args...)
	}
	return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
}

// QueryTx runs a prepared statement that returns rows inside tx.
func (db *DB) QueryTx(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Rows, error) {
	st, _ := db.wst.get(ctx, query)
	if st == nil {
		return tx.QueryContext(ctx, query, args...)
	}
	return tx.StmtContext(ctx, st).QueryContext(ctx, args...)
}

// QueryRowTx runs a prepared statement that returns one row inside tx.
func (db *DB) QueryRowTx(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	st, _ := db.wst.get(ctx, query)
	if st == nil {
		return tx.QueryRowContext(ctx, query, args...)
	}
	return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
}

// Query runs a prepared read statement on the read pool.
func (db *DB) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, _ := db.rst.get(ctx, query)
	if st == nil {
		return db.R.QueryContext(ctx, query, args...)
	}
	return st.QueryContext(ctx, args...)
}

// QueryRow runs a prepared read statement returning one row on the read pool.
func (db *DB) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	st, _ := db.rst.get(ctx, query)
	if st == nil {
		return db.R.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// Exec runs a prepared write statement outside a transaction.
func (db *DB) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, _ := db.wst.get(ctx, query)
	if st == nil {
		return db.W.ExecContext(ctx, query, args...)
	}
	return st.ExecContext(ctx, args...)
}

// QueryRowW runs a prepared statement returning one row on the write pool
// (an UPDATE … RETURNING outside a transaction).
func (db *DB) QueryRowW(ctx context.Context, query string, args ...any) *sql.Row {
	st, _ := db.wst.get(ctx, query)
	if st == nil {
		return db.W.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}
