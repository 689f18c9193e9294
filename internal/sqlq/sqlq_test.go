package sqlq

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestRebind(t *testing.T) {
	got := Rebind(true, "SELECT id FROM jobs WHERE a = ? AND b = '?' AND c = ? /*SKIP_LOCKED*/")
	want := "SELECT id FROM jobs WHERE a = $1 AND b = '?' AND c = $2 FOR UPDATE SKIP LOCKED"
	if got != want {
		t.Fatalf("got %q want %q", got, want)
	}
	if got := Rebind(false, "x = ? /*SKIP_LOCKED*/"); got != "x = ? " {
		t.Fatalf("sqlite: %q", got)
	}
}

func TestLoadAndBind(t *testing.T) {
	fsys := fstest.MapFS{"q.sql": {Data: []byte("-- a comment\n-- name: One\nSELECT 1\n-- name: Two\nSELECT\n  2\n")}}
	q, err := Load(fsys, "q.sql")
	if err != nil {
		t.Fatal(err)
	}
	var dst struct{ One, Two string }
	if err := Bind(q, &dst); err != nil || dst.One != "SELECT 1" || !strings.Contains(dst.Two, "2") {
		t.Fatalf("bind: %+v %v", dst, err)
	}
	var missing struct{ One, Two, Three string }
	if err := Bind(q, &missing); err == nil || !strings.Contains(err.Error(), "Three") {
		t.Fatalf("a field without a query: %v", err)
	}
	var extra struct{ One string }
	if err := Bind(q, &extra); err == nil || !strings.Contains(err.Error(), "Two") {
		t.Fatalf("a query without a field: %v", err)
	}
	dup := fstest.MapFS{"q.sql": {Data: []byte("-- name: A\nSELECT 1\n-- name: A\nSELECT 2\n")}}
	if _, err := Load(dup, "q.sql"); err == nil {
		t.Fatal("a repeated name must be an error")
	}
}
