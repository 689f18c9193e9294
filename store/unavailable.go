package store

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrUnavailable marks an error of the database rather than of the request:
// the disk is full, the file was deleted or replaced, the server is down or
// unreachable. The HTTP layer answers 503 with Retry-After for it, never
// 500, and nothing is acknowledged that was not stored.
var ErrUnavailable = errors.New("the database is unavailable")

type unavailableError struct{ err error }

func (e unavailableError) Error() string        { return "database unavailable: " + e.err.Error() }
func (e unavailableError) Unwrap() []error      { return []error{ErrUnavailable, e.err} }
func (e unavailableError) Is(target error) bool { return target == ErrUnavailable }

// Unavailable reports whether err says the database itself is in trouble
// (as opposed to a constraint, a bad statement or a missing row).
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, driver.ErrBadConn) {
		return true
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code[:2] {
		case "08", "53", "57", "58", "XX": // connection, resources (disk full), shutdown, system, internal
			return true
		}
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) || pgconn.SafeToRetry(err) || strings.Contains(err.Error(), "failed to connect") {
		return true
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EIO) || errors.Is(err, syscall.EROFS) {
		return true
	}
	// modernc.org/sqlite reports result codes in the message: SQLITE_FULL,
	// SQLITE_IOERR*, SQLITE_CANTOPEN, SQLITE_READONLY*, SQLITE_CORRUPT, SQLITE_NOTADB.
	msg := err.Error()
	for _, code := range []string{"SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_CORRUPT",
		"SQLITE_NOTADB", "database or disk is full", "disk I/O error", "unable to open database file"} {
		if strings.Contains(msg, code) {
			return true
		}
	}
	return false
}

// writeHealth remembers whether writes fail now, for the health checks:
// a database that answers reads but cannot store anything is degraded.
type writeHealth struct {
	mu      sync.Mutex
	failing error
	since   time.Time
}

func (w *writeHealth) record(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err == nil:
		w.failing = nil
	case Unavailable(err):
		if w.failing == nil {
			w.since = time.Now()
		}
		w.failing = err
	}
}

// WriteFailure returns the error of the last write if writes fail now
// (the database is unavailable for them), and since when.
func (db *DB) WriteFailure() (error, time.Time) {
	db.writes.mu.Lock()
	defer db.writes.mu.Unlock()
	return db.writes.failing, db.writes.since
}

// fileID is the device and inode of the SQLite file as opened.
type fileID struct{ dev, ino uint64 }

func statID(path string) (fileID, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, nil
	}
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, nil
}

// checkFile refuses writes once the SQLite file is not the one opened
// (deleted, or replaced by another file): open connections would go on
// writing into the lost inode and a restart would find none of it.
func (db *DB) checkFile() error {
	if db.path == "" {
		return nil
	}
	id, err := statID(db.path)
	if err == nil && id == db.fileID {
		return nil
	}
	if err == nil {
		err = fmt.Errorf("database file %s was replaced by another file (device %d inode %d, opened as device %d inode %d)",
			db.path, id.dev, id.ino, db.fileID.dev, db.fileID.ino)
	} else {
		err = fmt.Errorf("database file %s is gone: %w", db.path, err)
	}
	db.fileLost.Do(func() {
		slog.Default().Error("refusing writes: "+err.Error()+"; restore the file or restart the server", "path", db.path)
	})
	return unavailableError{err}
}

// guard wraps a write error for callers: database trouble becomes
// ErrUnavailable, and the outcome is recorded for the health checks.
func (db *DB) guard(err error) error {
	db.writes.record(err)
	if err != nil && Unavailable(err) && !errors.Is(err, ErrUnavailable) {
		return unavailableError{err}
	}
	return err
}
