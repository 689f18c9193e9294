// Package sqlq is the SQL machinery under the store: named queries read
// from .sql files, rewritten once for the database's dialect, bound to the
// typed fields of a struct, and kept prepared per connection pool. Library
// users never touch it; the task, job and artifact packages keep their SQL
// in a queries.sql file next to their code and reach each statement as a
// field (s.q.ClaimNext), so a typo is a start-up error, not a runtime one.
//
// Everything above the store speaks one SQL: `?` placeholders, Unix
// millisecond integers for times, JSON stored as text, RETURNING, and the
// token /*SKIP_LOCKED*/ where a claim wants row locks on PostgreSQL.
package sqlq

import (
	"bufio"
	"fmt"
	"io/fs"
	"reflect"
	"strconv"
	"strings"
)

// Queries holds named SQL statements read from a .sql file where each
// statement follows a "-- name: Name" line.
type Queries map[string]string

// MustLoad reads a queries file and panics if it is malformed; it is meant
// for package-level variables over embedded files.
func MustLoad(fsys fs.FS, name string) Queries {
	q, err := Load(fsys, name)
	if err != nil {
		panic(err)
	}
	return q
}

// Load reads a queries file. Lines starting with "--" other than the name
// lines are comments.
func Load(fsys fs.FS, name string) (Queries, error) {
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

// Replace returns q with old replaced by new in every statement (a column
// list shared by many statements, say).
func (q Queries) Replace(old, new string) Queries {
	out := make(Queries, len(q))
	for k, v := range q {
		out[k] = strings.ReplaceAll(v, old, new)
	}
	return out
}

// Rebind rewrites one statement for PostgreSQL when postgres is true: `?`
// placeholders become $1, $2… and /*SKIP_LOCKED*/ becomes FOR UPDATE SKIP
// LOCKED. For SQLite, which has one writer and needs no row locks, only the
// token goes.
func Rebind(postgres bool, s string) string {
	if !postgres {
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
// statement of the same name from q; a field with no statement, or a
// statement with no field, is an error.
func Bind(q Queries, dst any) error {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("sqlq: Bind wants a pointer to a struct, got %T", dst)
	}
	v = v.Elem()
	used := map[string]bool{}
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if f.Type.Kind() != reflect.String || !f.IsExported() {
			continue
		}
		s, ok := q[f.Name]
		if !ok {
			return fmt.Errorf("sqlq: no query named %s for %s.%s", f.Name, v.Type(), f.Name)
		}
		v.Field(i).SetString(s)
		used[f.Name] = true
	}
	for name := range q {
		if !used[name] {
			return fmt.Errorf("sqlq: query %s has no field in %s", name, v.Type())
		}
	}
	return nil
}
