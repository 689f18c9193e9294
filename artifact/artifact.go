// Package artifact stores JSON results in a tree: every finished job writes
// one root artifact, and programs can hang their own artifacts under others.
package artifact

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/servicekit/servicekit/internal/ids"
	"github.com/servicekit/servicekit/store"
)

//go:embed queries.sql
var queryFS embed.FS

var queries = store.MustLoadQueries(queryFS, "queries.sql")

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
	db *store.DB
	q  store.Queries
}

// NewManager returns a manager over db.
func NewManager(db *store.DB) *Manager {
	return &Manager{db: db, q: db.Prepare(queries)}
}

// InsertTx writes a new artifact inside tx. A non-nil parentID must exist.
// The job engine calls it in the same transaction that finishes a job, so a
// terminal job and its artifact appear together or not at all.
func (m *Manager) InsertTx(ctx context.Context, tx *sql.Tx, id string, data []byte, parentID *string, now time.Time) (level int, err error) {
	if parentID != nil {
		var n int
		if err := tx.QueryRowContext(ctx, m.q["Exists"], *parentID).Scan(&n); err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, ErrParentUnknown
		}
	}
	ms := now.UnixMilli()
	err = tx.QueryRowContext(ctx, m.q["Insert"], id, parentID, parentID, string(data), ms, ms).Scan(&level)
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
	return scan(m.db.R.QueryRowContext(ctx, m.q["Get"], id))
}
