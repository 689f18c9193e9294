package store

import (
	"context"
	"database/sql"

	"github.com/servicekit/servicekit/internal/sqlq"
)

// Prepare rewrites queries for this database's dialect (see
// [sqlq.Rebind]) and prepares every statement on both pools, so that
// running one later skips the parse and plan.
func (db *DB) Prepare(q sqlq.Queries) sqlq.Queries {
	out := make(sqlq.Queries, len(q))
	for name, s := range q {
		out[name] = sqlq.Rebind(db.Dialect == Postgres, s)
	}
	for _, s := range out {
		db.wst.Warm(s)
		db.rst.Warm(s)
	}
	return out
}

// Bind prepares q (as Prepare) and fills the struct dst points to with
// the statements, one string field per query name (see [sqlq.Bind]).
func (db *DB) Bind(q sqlq.Queries, dst any) error {
	return sqlq.Bind(db.Prepare(q), dst)
}

// MustBind is Bind that panics, for queries embedded in the binary.
func (db *DB) MustBind(q sqlq.Queries, dst any) {
	if err := db.Bind(q, dst); err != nil {
		panic(err)
	}
}

// Rebind rewrites one statement written in the store's SQL (`?`
// placeholders) for this database, for ad-hoc statements in tests and tools.
func (db *DB) Rebind(s string) string { return sqlq.Rebind(db.Dialect == Postgres, s) }

// ExecTx runs a prepared write statement inside tx.
func (db *DB) ExecTx(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	if st := db.wst.Get(query); st != nil {
		return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, query, args...)
}

// QueryTx runs a prepared statement that returns rows inside tx.
func (db *DB) QueryTx(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Rows, error) {
	if st := db.wst.Get(query); st != nil {
		return tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return tx.QueryContext(ctx, query, args...)
}

// QueryRowTx runs a prepared statement that returns one row inside tx.
func (db *DB) QueryRowTx(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	if st := db.wst.Get(query); st != nil {
		return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, query, args...)
}

// Query runs a prepared read statement on the read pool.
func (db *DB) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := db.rst.Get(query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return db.R.QueryContext(ctx, query, args...)
}

// QueryRow runs a prepared read statement returning one row on the read pool.
func (db *DB) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := db.rst.Get(query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return db.R.QueryRowContext(ctx, query, args...)
}

// Exec runs a prepared write statement outside a transaction; like InTx
// it reports database trouble as ErrUnavailable and, on SQLite, reports a
// write into a file that is no longer the one opened as failed.
func (db *DB) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	var err error
	if st := db.wst.Get(query); st != nil {
		res, err = st.ExecContext(ctx, args...)
	} else {
		res, err = db.W.ExecContext(ctx, query, args...)
	}
	if err == nil {
		err = db.checkFile()
	}
	return res, db.guard(err)
}

// QueryRowW runs a prepared statement returning one row on the write pool,
// outside a transaction (an UPDATE … RETURNING that is atomic by itself).
// It is for PostgreSQL: it does not check a SQLite file the way InTx does.
func (db *DB) QueryRowW(ctx context.Context, query string, args ...any) *sql.Row {
	if st := db.wst.Get(query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return db.W.QueryRowContext(ctx, query, args...)
}
