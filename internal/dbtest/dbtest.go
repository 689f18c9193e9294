// Package dbtest runs one test against every database servicekit supports,
// as a conformance suite: the same assertions prove SQLite and PostgreSQL
// behave alike.
//
// SQLite always runs (a file in the test's temp dir). PostgreSQL runs when
// SERVICEKIT_TEST_POSTGRES holds a server URL (`.ci/run` starts one; locally
// `url=$(.ci/postgres.sh start /tmp/skpg)` and export it). Each PostgreSQL
// run gets a schema of its own, dropped afterwards, so tests run in parallel
// on one server. Without the URL the PostgreSQL cases skip with a message
// saying how to run them; under CI=true a missing URL fails the test, so CI
// can never pass without having run them.
package dbtest

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/servicekit/servicekit/internal/ids"
	"github.com/servicekit/servicekit/store"
)

// EnvURL names the variable holding the PostgreSQL server URL for tests.
const EnvURL = "SERVICEKIT_TEST_POSTGRES"

// Each runs test once per database, as subtests "sqlite" and "postgres",
// with a URL of an empty, unmigrated database of its own.
func Each(t *testing.T, test func(t *testing.T, url string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { test(t, SQLiteURL(t)) })
	t.Run("postgres", func(t *testing.T) { test(t, PostgresURL(t)) })
}

// EachDB is Each with the database opened and migrated.
func EachDB(t *testing.T, test func(t *testing.T, db *store.DB)) {
	t.Helper()
	Each(t, func(t *testing.T, url string) { test(t, Open(t, url)) })
}

// SQLiteURL is a fresh SQLite file in the test's temp dir.
func SQLiteURL(t testing.TB) string {
	return "sqlite:///" + filepath.Join(t.TempDir(), "t.db")
}

// PostgresURL returns the URL of a fresh schema on the test server, dropped
// when the test ends, or skips the test (fails it under CI=true) when no
// server is configured.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		msg := "PostgreSQL tests need a server: url=$(.ci/postgres.sh start /tmp/skpg); export " + EnvURL + "=$url"
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but " + EnvURL + " is not set; " + msg)
		}
		t.Skip(msg)
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	schema := "t_" + strings.ToLower(ids.New())
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create test schema on %s: %v", EnvURL, err)
	}
	t.Cleanup(func() {
		if a, err := sql.Open("pgx", base); err == nil {
			a.Exec("DROP SCHEMA " + schema + " CASCADE")
			a.Close()
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}

// Open opens and migrates url, closing it when the test ends.
func Open(t testing.TB, url string) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}
