package store

import (
	"bufio"
	"fmt"
	"io/fs"
	"reflect"
	"strconv"
	"strings"
)

// Queries holds named SQL statements read from a .sql file where each
// statement follows a "-- name: Name" line. Packages keep their SQL in such
// a file next to their code and embed it.
type Queries map[string]string

// MustLoadQueries reads a queries file and panics if it is malformed; it is
// meant for package-level variables over embedded files.
func MustLoadQueries(fsys fs.FS, name string) Queries {
	q, err := LoadQueries(fsys, name)
	if err != nil {
		panic(err)
	}
	return q
}

// LoadQueries reads a queries file.
func LoadQueries(fsys fs.FS, name string) (Queries, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	q := Queries{}
	var cur string
	var b strings.Builder
	flush := func() {
		if cur != "" {
			q[cur] = strings.TrimSpace(b.String())
		}
		b.Reset()
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if n, ok := strings.CutPrefix(strings.TrimSpace(line), "-- name:"); ok {
			flush()
			cur = strings.TrimSpace(n)
			if _, dup := q[cur]; dup || cur == "" {
				return nil, fmt.Errorf("%s: query name %q empty or repeated", name, cur)
			}
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	flush()
	return q, sc.Err()
}

// Prepare rewrites queries for this database's dialect: `?` placeholders
// become $1, $2… on PostgreSQL, and /*SKIP_LOCKED*/ becomes
// FOR UPDATE SKIP LOCKED there (SQLite has one writer, so it needs no lock).
//
// It also prepares every statement on both pools, so that running one later
// skips the parse and plan. A statement that fails to prepare (a table a
// later migration adds, say) simply runs unprepared.
func (db *DB) Prepare(q Queries) Queries {
	out := make(Queries, len(q))
	for name, s := range q {
		out[name] = Rebind(db.Dialect, s)
	}
	for _, s := range out {
		one := Queries{"q": s}
		db.wst.warm(one)
		db.rst.warm(one)
	}
	return out
}

// Rebind rewrites one statement for a dialect (see [DB.Prepare]).
func Rebind(d Dialect, s string) string {
	if d != Postgres {
		return strings.ReplaceAll(s, "/*SKIP_LOCKED*/", "")
	}
	s = strings.ReplaceAll(s, "/*SKIP_LOCKED*/", "FOR UPDATE SKIP LOCKED")
	var b strings.Builder
	n := 0
	inStr := false
	for _, r := range s {
		switch {
		case r == '\'':
			inStr = !inStr
		case r == '?' && !inStr:
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Bind fills the string fields of the struct dst points to, each with the
// query of the same name from q, rewritten and prepared as [DB.Prepare]
// does, so code reaches its statements as typed fields (s.q.ClaimNext)
// instead of string keys. A field with no query, or a query with no field,
// is an error: a typo fails at start-up, not when the statement first runs.
func (db *DB) Bind(q Queries, dst any) error {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("store: Bind wants a pointer to a struct, got %T", dst)
	}
	v = v.Elem()
	prepared := db.Prepare(q)
	used := map[string]bool{}
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if f.Type.Kind() != reflect.String || !f.IsExported() {
			continue
		}
		s, ok := prepared[f.Name]
		if !ok {
			return fmt.Errorf("store: no query named %s for %s.%s", f.Name, v.Type(), f.Name)
		}
		v.Field(i).SetString(s)
		used[f.Name] = true
	}
	for name := range q {
		if !used[name] {
			return fmt.Errorf("store: query %s has no field in %s", name, v.Type())
		}
	}
	return nil
}

// MustBind is Bind that panics, for queries embedded in the binary.
func (db *DB) MustBind(q Queries, dst any) {
	if err := db.Bind(q, dst); err != nil {
		panic(err)
	}
}
