// Package artifact stores JSON results in a tree: every finished job writes
// one root artifact, and programs can hang their own artifacts under others.
//
// An artifact's level is its depth, fixed when it is created (a root is 0,
// a child its parent's level + 1); artifacts never move, so the stored level
// stays true. Deleting an artifact that has children is refused unless the
// caller asks for the whole subtree to go.
package artifact

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/servicekit/servicekit/internal/ids"
	"github.com/servicekit/servicekit/internal/sqlq"
	"github.com/servicekit/servicekit/store"
)

//go:embed queries.sql
var queryFS embed.FS

var queries = sqlq.MustLoad(queryFS, "queries.sql")

// artifactQueries are the statements of queries.sql, one field per "-- name:".
type artifactQueries struct{ Insert, Get, Exists, List, Count, Update, Delete, DeleteLeaf, Subtree string }

// Artifact is one stored JSON value (ArtifactOut in the API).
type Artifact struct {
	ID        string          `json:"id"`
	Data      json.RawMessage `json:"data"`
	ParentID  *string         `json:"parent_id"`
	Level     int             `json:"level" doc:"0 for a root, the parent's level + 1 otherwise"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// Errors the manager returns; the HTTP layer maps them to problem details.
var (
	ErrNotFound      = errors.New("artifact not found")
	ErrParentUnknown = errors.New("parent artifact not found")
	ErrHasChildren   = errors.New("artifact has children")
)

// Manager reads and writes artifacts.
type Manager struct {
	// Hierarchy names the levels of the tree in $tree and $expand answers.
	// The zero value is the hierarchy "default" with levels named level_<n>.
	// Set it before the manager is used; it is read without locking.
	Hierarchy Hierarchy

	db *store.DB
	q  artifactQueries
}

// NewManager returns a manager over db.
func NewManager(db *store.DB) *Manager {
	m := &Manager{db: db}
	db.MustBind(queries, &m.q)
	return m
}

// InsertTx writes a new artifact inside tx. A non-nil parentID must exist.
// The job engine calls it in the same transaction that finishes a job, so a
// terminal job and its artifact appear together or not at all.
func (m *Manager) InsertTx(ctx context.Context, tx *sql.Tx, id string, data []byte, parentID *string, now time.Time) (level int, err error) {
	if parentID != nil {
		var n int
		if err := m.db.QueryRowTx(ctx, tx, m.q.Exists, *parentID).Scan(&n); err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, ErrParentUnknown
		}
	}
	ms := now.UnixMilli()
	err = m.db.QueryRowTx(ctx, tx, m.q.Insert, id, parentID, parentID, string(data), ms, ms).Scan(&level)
	return level, err
}

// Save stores data (anything that encodes to JSON) as a new artifact under
// parentID (nil for a root) and returns it.
func (m *Manager) Save(ctx context.Context, data any, parentID *string) (*Artifact, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("encode artifact data: %w", err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	a := &Artifact{ID: ids.New(), Data: raw, ParentID: parentID, CreatedAt: now, UpdatedAt: now}
	err = m.db.InTx(ctx, func(tx *sql.Tx) error {
		a.Level, err = m.InsertTx(ctx, tx, a.ID, raw, parentID, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

type scanner interface{ Scan(...any) error }

func scan(row scanner) (*Artifact, error) {
	var a Artifact
	var data string
	var created, updated int64
	if err := row.Scan(&a.ID, &a.ParentID, &a.Level, &data, &created, &updated); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	a.Data = json.RawMessage(data)
	a.CreatedAt = time.UnixMilli(created).UTC()
	a.UpdatedAt = time.UnixMilli(updated).UTC()
	return &a, nil
}

// Get returns one artifact or ErrNotFound.
func (m *Manager) Get(ctx context.Context, id string) (*Artifact, error) {
	return scan(m.db.QueryRow(ctx, m.q.Get, id))
}

// List returns up to limit artifacts starting at offset, oldest first, and
// how many there are in all. A limit of 0 or less means no limit. The count
// and the page are two reads, so under concurrent writes total may be off by
// the artifacts that came or went in between.
func (m *Manager) List(ctx context.Context, limit, offset int) ([]*Artifact, int, error) {
	if limit <= 0 {
		limit = math.MaxInt32 // both dialects take a large LIMIT; only SQLite takes -1
	}
	var total int
	if err := m.db.QueryRow(ctx, m.q.Count).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := m.db.Query(ctx, m.q.List, limit, max(offset, 0))
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := []*Artifact{} // an empty list encodes as [], not null
	for rows.Next() {
		a, err := scan(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, a)
	}
	return out, total, rows.Err()
}

// Update replaces an artifact's data and bumps its updated_at. Its parent
// and level never change: moving artifacts would invalidate the stored
// levels of a whole subtree.
func (m *Manager) Update(ctx context.Context, id string, data json.RawMessage) (*Artifact, error) {
	var buf bytes.Buffer
	// Compact validates too, and stores data the way Save does.
	if err := json.Compact(&buf, data); err != nil {
		return nil, fmt.Errorf("artifact data is not valid JSON: %w", err)
	}
	now := time.Now().UnixMilli()
	var a *Artifact
	err := m.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		a, err = scan(m.db.QueryRowTx(ctx, tx, m.q.Update, buf.String(), now, id))
		return err
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Delete removes an artifact. When it has children, it returns
// ErrHasChildren unless cascade is set, in which case the whole subtree goes
// (the schema's ON DELETE CASCADE removes the descendants in the same
// statement). Without cascade the check and the delete are one conditional
// statement, so a child added in between cannot be swept away unasked.
func (m *Manager) Delete(ctx context.Context, id string, cascade bool) error {
	return m.db.InTx(ctx, func(tx *sql.Tx) error {
		var res sql.Result
		var err error
		if cascade {
			res, err = m.db.ExecTx(ctx, tx, m.q.Delete, id)
		} else {
			res, err = m.db.ExecTx(ctx, tx, m.q.DeleteLeaf, id, id)
		}
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return err
		}
		// Nothing was deleted: tell a missing artifact from a parent.
		var exists int
		if err := m.db.QueryRowTx(ctx, tx, m.q.Exists, id).Scan(&exists); err != nil {
			return err
		}
		if exists == 0 {
			return ErrNotFound
		}
		return ErrHasChildren
	})
}
