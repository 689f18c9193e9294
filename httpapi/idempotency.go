package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/servicekit/servicekit/internal/sqlq"
	"github.com/servicekit/servicekit/store"
)

// Idempotent submits (SPEC §3): a POST /api/v1/tasks or $execute carrying an
// Idempotency-Key header is answered once; a retry with the same key within
// 24 h gets the first answer again instead of creating a second task or job.
//
// The record lives in the database, not in memory, so a retry that lands on
// another node of a shared PostgreSQL deployment, or after a restart, still
// finds it. A key is claimed by inserting its row with ON CONFLICT DO NOTHING
// before the request is handled: the database's primary key decides which of
// several concurrent requests runs, and the others wait for its answer.
//
// What is stored: every answer below 500 except 429. A 4xx is as much the
// outcome of the request as a 201 (a retry of a request that was refused with
// 404 or 422 gets the same refusal, as with Stripe's keys), and storing it
// means a retry never runs the request a second time behind the client's
// back. A 5xx or a 429 means "not done, try again", so the record is removed
// and the retry runs afresh.

//go:embed idempotency.sql
var idemFS embed.FS

// idemQueries holds the statements rewritten for each dialect once: the
// Server has no field for them, and the rewrite depends only on the dialect
// (it is what [store.DB.Prepare] does).
var idemQueries = func() map[store.Dialect]sqlq.Queries {
	q := sqlq.MustLoad(idemFS, "idempotency.sql")
	out := map[store.Dialect]sqlq.Queries{}
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		out[d] = sqlq.Queries{}
		for name, s := range q {
			out[d][name] = sqlq.Rebind(d == store.Postgres, s)
		}
	}
	return out
}()

const (
	// idemTTL is how long a key is remembered.
	idemTTL = 24 * time.Hour
	// idemMaxKey bounds the key; it is stored and indexed, and real keys are
	// UUIDs or similar.
	idemMaxKey = 255
	// idemMaxBody is huma's default body limit. A larger body is handed on
	// untouched so huma answers 413 as it does without a key.
	idemMaxBody = 1 << 20
	// idemWait is how long a duplicate waits for the first request's answer.
	// The two endpoints only write a row or two, so this is only reached when
	// the database is stuck; the client then gets 409 and retries.
	idemWait = 10 * time.Second
	// idemPoll is how often a waiting duplicate looks at the record. Two
	// requests with one key at once is a rare race, so polling is cheaper
	// than a notification mechanism that would have to span nodes.
	idemPoll = 10 * time.Millisecond
	// idemAbandoned is the age after which an in-flight record is taken to
	// belong to a process that died mid-request. Without it a crash would
	// lock the key for 24 h. The requests take milliseconds, so a minute is
	// far beyond any live one; the price is that if the dead process did
	// create the job before dying, the retry creates a second one.
	idemAbandoned = time.Minute
	// idemSaveTimeout bounds the write of the answer; it runs even when the
	// client has gone, since the task or job it describes exists regardless.
	idemSaveTimeout = 10 * time.Second
)

// idemRecord is one stored key.
type idemRecord struct {
	bodyHash    string
	status      int
	location    string
	contentType string
	body        string
	createdAt   int64
}

// idempotent applies Idempotency-Key to POST /api/v1/tasks and
// POST /api/v1/tasks/{id}/$execute; other requests, and these without the
// header, pass straight through. It sits inside authentication, so a
// request without a valid API key can neither claim nor read a key.
func (s *Server) idempotent(next http.Handler) http.Handler {
	if s.d.DB == nil || s.d.Tasks == nil {
		return next
	}
	q := idemQueries[s.d.DB.Dialect]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !idempotentPath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		keys := r.Header.Values("Idempotency-Key")
		if len(keys) == 0 || (len(keys) == 1 && keys[0] == "") {
			next.ServeHTTP(w, r)
			return
		}
		if len(keys) > 1 {
			writeProblem(w, r, newProblem(400, "send one Idempotency-Key header, not several"))
			return
		}
		key := keys[0]
		if !validIdemKey(key) {
			writeProblem(w, r, problemf(400, "Idempotency-Key must be 1 to %d printable ASCII characters", idemMaxKey))
			return
		}

		body, err := io.ReadAll(io.LimitReader(r.Body, idemMaxBody+1))
		if err != nil {
			writeProblem(w, r, problemf(400, "reading the request body: %v", err))
			return
		}
		if len(body) > idemMaxBody {
			// Too large to be valid: let huma refuse it (413) from the full
			// stream, and remember nothing.
			r.Body = readCloser{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
			next.ServeHTTP(w, r)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))

		// The key is scoped by path (one key on two tasks' $execute is two
		// requests); the hash identifies the request within that scope, byte
		// for byte: a body that differs only in whitespace counts as another.
		scope := r.URL.Path
		h := sha256.New()
		io.WriteString(h, r.Method+"\n"+scope+"\n")
		h.Write(body)
		hash := hex.EncodeToString(h.Sum(nil))

		s.serveIdempotent(w, r, next, q, scope, key, hash)
	})
}

// serveIdempotent claims the key and runs next, or answers from the record
// another request holds, waiting for it if that request is still running.
func (s *Server) serveIdempotent(w http.ResponseWriter, r *http.Request, next http.Handler, q sqlq.Queries, scope, key, hash string) {
	ctx := r.Context()
	fail := func(err error) {
		var p *Problem
		if !errors.As(s.toProblem(ctx, err), &p) {
			p = newProblem(500, "internal error")
		}
		writeProblem(w, r, p)
	}
	deadline := time.Now().Add(idemWait)
	for {
		now := time.Now().UnixMilli()
		res, err := s.d.DB.W.ExecContext(ctx, q["Claim"], scope, key, hash, now)
		if err != nil {
			fail(err)
			return
		}
		if n, err := res.RowsAffected(); err != nil {
			fail(err)
			return
		} else if n == 1 {
			s.runClaimed(w, r, next, q, scope, key, now)
			return
		}

		// Someone holds the key: look at its record until it is answered,
		// gone (its request failed with a 5xx) or expired.
	wait:
		for {
			rec, found, err := s.loadIdem(ctx, q, scope, key)
			if err != nil {
				fail(err)
				return
			}
			age := time.Since(time.UnixMilli(rec.createdAt))
			switch {
			case !found:
				break wait // claim again
			case age >= idemTTL || (rec.status == 0 && age >= idemAbandoned):
				// Stale: the key is free again. Remove exactly this record;
				// if another request already replaced it, nothing happens.
				if _, err := s.d.DB.W.ExecContext(ctx, q["Release"], scope, key, rec.createdAt); err != nil {
					fail(err)
					return
				}
				break wait
			case rec.bodyHash != hash:
				writeProblem(w, r, validationFailed(
					"Idempotency-Key "+quoteKey(key)+" was used with a different request body; use a new key for a different request",
					FieldDetail{Location: "header.Idempotency-Key", Message: "already used with a different request body"}))
				return
			case rec.status != 0:
				replayIdem(w, rec)
				return
			}
			if time.Now().After(deadline) {
				writeProblem(w, r, stillProcessing())
				return
			}
			select {
			case <-ctx.Done():
				fail(ctx.Err())
				return
			case <-time.After(idemPoll):
			}
		}
		if time.Now().After(deadline) {
			writeProblem(w, r, stillProcessing())
			return
		}
	}
}

// stillProcessing is the answer to a duplicate that waited idemWait in vain.
func stillProcessing() *Problem {
	p := newProblem(409, "a request with this Idempotency-Key is still being processed; retry shortly")
	p.header = http.Header{"Retry-After": {"1"}}
	return p
}

// runClaimed runs next for the request that won the key, then stores its
// answer (or frees the key for a 5xx/429) and sends the answer on.
func (s *Server) runClaimed(w http.ResponseWriter, r *http.Request, next http.Handler, q sqlq.Queries, scope, key string, claimedAt int64) {
	rec := &idemRecorder{w: w}
	settled := false
	// The write outlives the client: if it hung up after the job was made,
	// its retry must still find the answer.
	saveCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(r.Context()), idemSaveTimeout)
	}
	defer func() {
		if settled {
			return
		}
		// next panicked: free the key so a retry is not locked out, and let
		// the panic go on to net/http's recovery.
		ctx, cancel := saveCtx()
		defer cancel()
		if _, err := s.d.DB.W.ExecContext(ctx, q["Release"], scope, key, claimedAt); err != nil {
			s.d.Logger.Error("idempotency: release key", "request_id", RequestID(r.Context()), "error", err)
		}
	}()

	next.ServeHTTP(rec, r)
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}

	ctx, cancel := saveCtx()
	defer cancel()
	var err error
	if status >= 500 || status == http.StatusTooManyRequests {
		_, err = s.d.DB.W.ExecContext(ctx, q["Release"], scope, key, claimedAt)
	} else {
		_, err = s.d.DB.W.ExecContext(ctx, q["Complete"], status,
			nullIfEmpty(w.Header().Get("Location")), nullIfEmpty(w.Header().Get("Content-Type")),
			rec.body.String(), scope, key, claimedAt)
		if err != nil {
			// Don't leave an in-flight record that would hold retries up.
			s.d.DB.W.ExecContext(ctx, q["Release"], scope, key, claimedAt)
		}
	}
	settled = true
	if err != nil {
		// The client still gets its answer; only a retry loses the replay.
		s.d.Logger.Error("idempotency: store answer", "request_id", RequestID(r.Context()), "error", err)
	}
	w.WriteHeader(status)
	w.Write(rec.body.Bytes())
}

func (s *Server) loadIdem(ctx context.Context, q sqlq.Queries, scope, key string) (idemRecord, bool, error) {
	var rec idemRecord
	var loc, ct, body sql.NullString
	err := s.d.DB.R.QueryRowContext(ctx, q["Load"], scope, key).
		Scan(&rec.bodyHash, &rec.status, &loc, &ct, &body, &rec.createdAt)
	if errors.Is(err, sql.ErrNoRows) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, err
	}
	rec.location, rec.contentType, rec.body = loc.String, ct.String, body.String
	return rec, true, nil
}

// replayIdem sends a stored answer. Idempotent-Replayed tells the client
// (and anyone reading logs) that nothing new was created.
func replayIdem(w http.ResponseWriter, rec idemRecord) {
	h := w.Header()
	if rec.location != "" {
		h.Set("Location", rec.location)
	}
	if rec.contentType != "" {
		h.Set("Content-Type", rec.contentType)
	}
	h.Set("Idempotent-Replayed", "true")
	w.WriteHeader(rec.status)
	io.WriteString(w, rec.body)
}

// PurgeIdempotencyKeys deletes records older than 24 h. They are already
// ignored by the middleware; this only keeps the table small.
func (s *Server) PurgeIdempotencyKeys(ctx context.Context) (int64, error) {
	if s.d.DB == nil {
		return 0, nil
	}
	res, err := s.d.DB.W.ExecContext(ctx, idemQueries[s.d.DB.Dialect]["Purge"], time.Now().Add(-idemTTL).UnixMilli())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// idempotentPath reports whether p is POST /api/v1/tasks or a task's $execute.
func idempotentPath(p string) bool {
	if p == "/api/v1/tasks" {
		return true
	}
	rest, ok := strings.CutPrefix(p, "/api/v1/tasks/")
	if !ok {
		return false
	}
	id, ok := strings.CutSuffix(rest, "/$execute")
	return ok && id != "" && !strings.Contains(id, "/")
}

// validIdemKey accepts 1 to 255 printable ASCII characters (space included),
// so a key can be stored and echoed in a problem detail safely.
func validIdemKey(k string) bool {
	if k == "" || len(k) > idemMaxKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// quoteKey quotes a key for a message, shortened so a 255-char key does not
// drown the detail.
func quoteKey(k string) string {
	if len(k) > 64 {
		k = k[:61] + "..."
	}
	return `"` + k + `"`
}

func nullIfEmpty(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// readCloser re-attaches the original body's Close to a reader that
// replays the bytes already consumed.
type readCloser struct {
	io.Reader
	io.Closer
}

// idemRecorder holds back the claimed request's answer until it is stored,
// so a concurrent retry can never see a reply the database does not have.
// Headers go straight to the real writer (they are not sent before
// WriteHeader), so outer middleware's headers such as X-Request-ID stay.
// The two endpoints answer small JSON, so buffering the body is cheap.
type idemRecorder struct {
	w      http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *idemRecorder) Header() http.Header { return r.w.Header() }

func (r *idemRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *idemRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

// Flush does nothing: a flush would send the status before it is stored.
// Defining it stops http.ResponseController from reaching the real writer's.
func (r *idemRecorder) Flush() {}

// Unwrap lets huma set a read deadline on the real connection.
func (r *idemRecorder) Unwrap() http.ResponseWriter { return r.w }
