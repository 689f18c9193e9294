// Package ids makes and checks the ULIDs that name every task, job and artifact.
//
// ULIDs sort by creation time, so "newest first" is an ORDER BY id; the
// monotonic entropy source keeps ids made in the same millisecond in order
// too, which the job queue relies on for first-in first-out dispatch.
package ids

import (
	"crypto/rand"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

var (
	mu      sync.Mutex
	entropy = ulid.Monotonic(rand.Reader, 0)
)

// New returns a new ULID string, strictly greater than every id this process made before.
func New() string {
	mu.Lock()
	defer mu.Unlock()
	return ulid.MustNew(ulid.Timestamp(time.Now()), entropy).String()
}

// Valid reports whether s is a 26-character Crockford base32 ULID.
func Valid(s string) bool {
	if len(s) != ulid.EncodedSize {
		return false
	}
	_, err := ulid.ParseStrict(s)
	return err == nil
}
