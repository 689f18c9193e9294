// Package store opens servicekit's database and hides what differs between
// the embedded SQLite default and PostgreSQL: the dialect, the embedded
// migrations of each, and the [Notifier] that carries signals between the
// processes sharing a database (LISTEN/NOTIFY on PostgreSQL).
//
// Everything above this package speaks one SQL (see internal/sqlq); the
// DB rewrites and prepares a package's named queries once, so the task, job
// and artifact code never branches on the dialect.
//
// SQLite gets two pools: one writer connection, because SQLite has a single
// writer and queueing writers inside Go is cheaper and fairer than letting
// them spin on SQLITE_BUSY, and several readers that WAL mode lets run beside it.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/servicekit/servicekit/internal/sqlq"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the "sqlite" database/sql driver
)

// Dialect names a supported database.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DefaultURL is the embedded database used when none is configured.
const DefaultURL = "sqlite:///./servicekit.db"

// DB is an open servicekit database.
type DB struct {
	Dialect Dialect
	// W runs statements that write. On SQLite it holds exactly one connection.
	// W and R are public for task functions that are given the database
	// handle and run their own SQL; the engine goes through the helpers.
	W *sql.DB
	// R runs read-only queries; on PostgreSQL it is the same pool as W.
	R *sql.DB

	url  string
	path string // SQLite file, "" for :memory: and PostgreSQL

	dsn      string      // driver DSN (PostgreSQL: for the notifier's own connection)
	wst, rst *sqlq.Cache // prepared statements of W and R

	notifyOnce sync.Once
	notifier   *Notifier

	fileID   fileID    // the SQLite file as opened
	fileLost sync.Once // logs its loss once
	writes   writeHealth
}

//go:embed migrations
var migrations embed.FS

// Open connects to the database named by a SQLAlchemy-style URL:
// sqlite:///relative.db, sqlite:////abs/path.db, sqlite://:memory:, or
// postgres://user:pass@host:port/db. It does not migrate; call [DB.Migrate].
func Open(ctx context.Context, rawURL string) (*DB, error) {
	dialect, dsn, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	db := &DB{Dialect: dialect, url: rawURL, dsn: dsn}
	switch dialect {
	case SQLite:
		if err := db.openSQLite(dsn); err != nil {
			return nil, err
		}
	case Postgres:
		if !strings.Contains(dsn, "idle_in_transaction_session_timeout") {
			// A node cut off in the middle of a transaction leaves its rows
			// locked; the server aborts such a transaction after this long,
			// so the other nodes can rescue its jobs. Our own transactions
			// are never idle; a task function that holds one open longer
			// sets its own value in the URL.
			sep := "?"
			if strings.Contains(dsn, "?") {
				sep = "&"
			}
			dsn += sep + "idle_in_transaction_session_timeout=5000"
			db.dsn = dsn
		}
		p, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		p.SetMaxOpenConns(max(8, 4*runtime.NumCPU()))
		p.SetMaxIdleConns(max(8, 4*runtime.NumCPU()))
		db.W, db.R = p, p
	}
	db.wst, db.rst = sqlq.NewCache(db.W), sqlq.NewCache(db.R)
	if err := db.Ping(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to %s database: %w", dialect, err)
	}
	if db.path != "" {
		// The file the first connection opened (or created): writes stop
		// if it is ever not this one.
		if db.fileID, err = statID(db.path); err != nil {
			db.Close()
			return nil, fmt.Errorf("database file: %w", err)
		}
	}
	return db, nil
}

func (db *DB) openSQLite(path string) error {
	// synchronous=NORMAL in WAL mode: a commit survives a crash of the process
	// (the SIGKILL case the job engine is built for) but the newest commits may
	// be lost if the operating system itself crashes. Add ?synchronous=full to
	// the URL to trade speed for that too.
	pragmas := "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	if path == ":memory:" {
		// One connection serves reads and writes: every connection to
		// :memory: would otherwise be its own empty database.
		p, err := sql.Open("sqlite", "file::memory:?"+strings.Replace(pragmas, "journal_mode(WAL)", "journal_mode(MEMORY)", 1))
		if err != nil {
			return err
		}
		p.SetMaxOpenConns(1)
		p.SetConnMaxIdleTime(0)
		p.SetConnMaxLifetime(0)
		db.W, db.R = p, p
		return nil
	}
	path, sync := splitSync(path)
	if sync != "" {
		pragmas = strings.Replace(pragmas, "synchronous(NORMAL)", "synchronous("+sync+")", 1)
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create database directory: %w", err)
		}
	}
	db.path = path
	dsn := "file:" + path + "?" + pragmas
	w, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
	if err != nil {
		return err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	r, err := sql.Open("sqlite", dsn)
	if err != nil {
		w.Close()
		return err
	}
	r.SetMaxOpenConns(max(4, 2*runtime.NumCPU()))
	r.SetMaxIdleConns(max(4, 2*runtime.NumCPU()))
	db.W, db.R = w, r
	return nil
}

// splitSync takes a "?synchronous=full" style option off a SQLite path.
func splitSync(path string) (string, string) {
	p, q, ok := strings.Cut(path, "?")
	if !ok {
		return path, ""
	}
	v, _ := url.ParseQuery(q)
	return p, strings.ToUpper(v.Get("synchronous"))
}

// parseURL turns a SQLAlchemy-style database URL into a dialect and a driver DSN.
func parseURL(raw string) (Dialect, string, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return "", "", fmt.Errorf("database URL %q: want sqlite:///path.db or postgres://user:pass@host/db", raw)
	}
	base, _, _ := strings.Cut(scheme, "+") // sqlite+aiosqlite, postgresql+asyncpg
	switch base {
	case "sqlite", "sqlite3":
		switch {
		case rest == ":memory:" || rest == "/:memory:":
			return SQLite, ":memory:", nil
		case strings.HasPrefix(rest, "/") && len(rest) > 1:
			// sqlite:///rel.db has rest "/rel.db"; sqlite:////abs.db has "//abs.db".
			return SQLite, rest[1:], nil
		}
		return "", "", fmt.Errorf("database URL %q: want sqlite:///relative.db, sqlite:////abs/path.db or sqlite://:memory:", raw)
	case "postgres", "postgresql":
		return Postgres, "postgres://" + rest, nil
	}
	return "", "", fmt.Errorf("database URL %q: unsupported scheme %q (use sqlite or postgres)", raw, scheme)
}

// Ping checks that the database answers a query that reads a real table
// (SELECT 1 alone would succeed on a SQLite file that can no longer be read).
func (db *DB) Ping(ctx context.Context) error {
	var n int
	err := db.R.QueryRowContext(ctx, "SELECT COUNT(*) FROM (SELECT 1 FROM jobs LIMIT 1) AS one").Scan(&n)
	if err != nil && strings.Contains(err.Error(), "no such table") || isUndefinedTable(err) {
		return db.R.QueryRowContext(ctx, "SELECT 1").Scan(&n) // not migrated yet
	}
	return err
}

// Check is the health check: Ping, and for a SQLite file also that the
// file is still there and still a SQLite database. Open connections keep
// working on a deleted or overwritten file, so a query alone would report
// healthy until the next restart finds the data gone.
func (db *DB) Check(ctx context.Context) error {
	if err := db.Ping(ctx); err != nil {
		return err
	}
	if db.path == "" {
		return nil
	}
	if err := db.checkFile(); err != nil {
		return err
	}
	f, err := os.Open(db.path)
	if err != nil {
		return fmt.Errorf("database file: %w", err)
	}
	defer f.Close()
	header := make([]byte, 16)
	if _, err := io.ReadFull(f, header); err != nil || string(header) != "SQLite format 3\x00" {
		return fmt.Errorf("database file %s is no longer a SQLite database", db.path)
	}
	return nil
}

func isUndefinedTable(err error) bool {
	return err != nil && strings.Contains(err.Error(), "42P01")
}

// Notifier returns the database's signal carrier (see [Notifier]), starting
// its PostgreSQL listener on first use.
func (db *DB) Notifier() *Notifier {
	db.notifyOnce.Do(func() {
		db.notifier = newNotifier(db)
		if db.Dialect != Postgres {
			return
		}
		schema := "public"
		if err := db.W.QueryRow("SELECT current_schema()").Scan(&schema); err != nil {
			db.notifier.log.Warn("notifier: read current schema; using public", "error", err)
		}
		db.notifier.start(schema)
	})
	return db.notifier
}

// Close stops the notifier and closes both pools.
func (db *DB) Close() error {
	db.notifyOnce.Do(func() {}) // no notifier may start from here on
	if db.notifier != nil {
		db.notifier.close()
	}
	db.wst.Close()
	db.rst.Close()
	err := db.W.Close()
	if db.R != db.W {
		err = errors.Join(err, db.R.Close())
	}
	return err
}

// String names the database without its password, for logs.
func (db *DB) String() string {
	u, err := url.Parse(db.url)
	if err != nil || u.User == nil {
		return db.url
	}
	return u.Redacted()
}

func (db *DB) migrationFS() (fs.FS, goose.Dialect) {
	sub, _ := fs.Sub(migrations, "migrations/"+string(db.Dialect))
	if db.Dialect == Postgres {
		return sub, goose.DialectPostgres
	}
	return sub, goose.DialectSQLite3
}

func (db *DB) provider() (*goose.Provider, error) {
	fsys, dialect := db.migrationFS()
	var opts []goose.ProviderOption
	if db.Dialect == Postgres {
		// Several servers started at once on an empty database must not run
		// the migrations side by side (CREATE TABLE races end in duplicate
		// key errors in pg_type): a session advisory lock serializes them,
		// and each one after the first finds nothing left to apply.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	return goose.NewProvider(dialect, db.W, fsys, opts...)
}

// Migrate applies every embedded migration not yet applied.
func (db *DB) Migrate(ctx context.Context) error {
	p, err := db.provider()
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// MigrationStatus lists each migration and whether it is applied.
func (db *DB) MigrationStatus(ctx context.Context) ([]*goose.MigrationStatus, error) {
	p, err := db.provider()
	if err != nil {
		return nil, err
	}
	return p.Status(ctx)
}

// InTx runs fn in a write transaction and commits it if fn returns nil.
// Trouble with the database itself comes back as ErrUnavailable; on SQLite
// the file is checked to be the one opened once the commit is done (one stat
// per transaction, not two: a commit into a lost file is reported failed), so
// a commit reported done is in the file a restart opens.
func (db *DB) InTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.W.BeginTx(ctx, nil)
	if err != nil {
		return db.guard(err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return db.guard(err)
	}
	if err := tx.Commit(); err != nil {
		return db.guard(err)
	}
	return db.guard(db.checkFile())
}
