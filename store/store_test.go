package store

import (
	"context"
	"path/filepath"
	"testing"
)

func TestParseURL(t *testing.T) {
	cases := []struct {
		in      string
		dialect Dialect
		dsn     string
		bad     bool
	}{
		{"sqlite:///./servicekit.db", SQLite, "./servicekit.db", false},
		{"sqlite:///data.db", SQLite, "data.db", false},
		{"sqlite:////abs/path.db", SQLite, "/abs/path.db", false},
		{"sqlite+aiosqlite:///./data.db", SQLite, "./data.db", false},
		{"sqlite://:memory:", SQLite, ":memory:", false},
		{"postgres://u:p@localhost:5432/db", Postgres, "postgres://u:p@localhost:5432/db", false},
		{"postgresql+asyncpg://u@h/db", Postgres, "postgres://u@h/db", false},
		{"mysql://x/y", "", "", true},
		{"servicekit.db", "", "", true},
		{"sqlite://", "", "", true},
	}
	for _, c := range cases {
		d, dsn, err := parseURL(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("%s: want error", c.in)
			}
			continue
		}
		if err != nil || d != c.dialect || dsn != c.dsn {
			t.Errorf("%s: got %q %q %v, want %q %q", c.in, d, dsn, err, c.dialect, c.dsn)
		}
	}
}

func TestOpenMigrateSQLite(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{"sqlite:///" + filepath.Join(t.TempDir(), "sub", "a.db"), "sqlite://:memory:"} {
		db, err := Open(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if err := db.Migrate(ctx); err != nil { // idempotent
			t.Fatal(err)
		}
		st, err := db.MigrationStatus(ctx)
		if err != nil || len(st) == 0 || st[0].State != "applied" {
			t.Fatalf("status %v %v", st, err)
		}
		var mode string
		db.W.QueryRow("PRAGMA journal_mode").Scan(&mode)
		if u != "sqlite://:memory:" && mode != "wal" {
			t.Errorf("journal_mode %q, want wal", mode)
		}
		db.Close()
	}
}
