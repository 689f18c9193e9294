package sqlq

import (
	"database/sql"
	"sync"
)

// Cache keeps one prepared statement per query text on one pool. The
// SQLite driver would otherwise parse and plan every statement on every
// call, which cost a third of the CPU of a busy server; database/sql keeps
// the statement prepared on each connection it is used on.
type Cache struct {
	pool *sql.DB
	mu   sync.RWMutex
	m    map[string]*sql.Stmt
}

// NewCache makes an empty cache over pool.
func NewCache(pool *sql.DB) *Cache {
	return &Cache{pool: pool, m: map[string]*sql.Stmt{}}
}

// Get returns the prepared statement of query, or nil if it was never
// prepared. It never prepares: preparing needs a free connection, and the
// writer pool's only connection may be held by the very transaction asking,
// which would deadlock. Statements are prepared up front by Warm.
func (c *Cache) Get(query string) *sql.Stmt {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[query]
}

// Warm prepares the statements not yet prepared. One that fails to prepare
// (a table a later migration adds, say) is skipped: it runs unprepared.
//
// It prepares without holding the lock: a prepare waits for a free
// connection, and the writer pool's only one may be held by a transaction
// that calls Get, which would then wait for the lock — a deadlock that a
// second manager built on a live database hit (TestWarmWhileTxUsesCache).
func (c *Cache) Warm(statements ...string) {
	for _, q := range statements {
		if c.Get(q) != nil {
			continue
		}
		st, err := c.pool.Prepare(q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if c.m[q] == nil {
			c.m[q], st = st, nil
		}
		c.mu.Unlock()
		if st != nil {
			st.Close() // another Warm prepared it meanwhile
		}
	}
}

// Close closes every prepared statement.
func (c *Cache) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
	c.m = map[string]*sql.Stmt{}
}
