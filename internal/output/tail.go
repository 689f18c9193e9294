package output

import "sync"

// Tail is an io.Writer that retains only the last limit bytes written to it.
//
// It is a ring buffer: memory never exceeds limit bytes however much is
// written, and it is allocated as output arrives, so the many jobs that print
// little cost little. Tail is safe for concurrent use, so one Tail can
// collect a job's stdout and stderr together while another goroutine reads it.
type Tail struct {
	mu    sync.Mutex
	limit int
	buf   []byte // retained bytes; len(buf) <= limit
	start int    // index of the oldest byte once buf is full, else 0
	total int64  // bytes ever written
}

// NewTail returns a Tail that keeps the last limit bytes. A limit <= 0 keeps
// nothing but still counts what is written, for Total and Truncated.
func NewTail(limit int) *Tail {
	return &Tail{limit: max(limit, 0)}
}

// Write retains the tail of p. It always returns len(p), nil: dropping old
// output is the point, not an error.
func (t *Tail) Write(p []byte) (int, error) {
	n := len(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total += int64(n)
	if t.limit == 0 || n == 0 {
		return n, nil
	}
	if n >= t.limit {
		// p alone fills the buffer: everything retained so far is dropped.
		t.grow(t.limit)
		t.buf = t.buf[:t.limit]
		copy(t.buf, p[n-t.limit:])
		t.start = 0
		return n, nil
	}
	if len(t.buf) < t.limit {
		// Still filling: append up to the limit.
		k := min(t.limit-len(t.buf), len(p))
		t.grow(len(t.buf) + k)
		t.buf = append(t.buf, p[:k]...)
		p = p[k:]
	}
	// Full: overwrite the oldest bytes, wrapping around at most once since
	// len(p) < limit here.
	for len(p) > 0 {
		c := copy(t.buf[t.start:], p)
		p = p[c:]
		t.start = (t.start + c) % t.limit
	}
	return n, nil
}

// grow makes room for n bytes without letting append's doubling allocate past
// the limit, which would break the memory bound for large limits.
func (t *Tail) grow(n int) {
	if n <= cap(t.buf) {
		return
	}
	c := min(max(n, 2*cap(t.buf), 512), t.limit)
	nb := make([]byte, len(t.buf), c)
	copy(nb, t.buf)
	t.buf = nb
}

// Bytes returns a copy of the retained bytes, oldest first.
func (t *Tail) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]byte, len(t.buf))
	n := copy(out, t.buf[t.start:])
	copy(out[n:], t.buf[:t.start])
	return out
}

// String returns the retained bytes as a string, oldest first. The bytes are
// returned as written; they may not be valid UTF-8, notably where the tail
// cut through a multi-byte character.
func (t *Tail) String() string {
	return string(t.Bytes())
}

// Truncated reports whether any written byte has been dropped, so a caller
// can mark the tail as partial (for example with a leading "...").
func (t *Tail) Truncated() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total > int64(len(t.buf))
}

// Total returns the number of bytes ever written, retained or not.
func (t *Tail) Total() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total
}
