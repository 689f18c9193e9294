// Package connlimit caps how many connections an HTTP server holds open,
// so that clients can never take the file descriptors the server needs for
// its jobs (pipes, child processes) and its database.
//
// A plain cap (golang.org/x/net/netutil.LimitListener) stops accepting at
// the limit, so whoever holds the connections holds the server: 20,000
// idle sockets that never send a request would keep every real client
// waiting in the kernel's backlog. Here a connection over the limit is
// accepted and the oldest connection that is doing nothing is closed to
// make room for it — first one that has not sent a whole request yet
// (http.StateNew: an idle socket, a slowloris), else one idle between
// requests (http.StateIdle). A connection serving a request is never
// closed; when all of them are, the new one waits until one is done. So
// idle sockets cost nothing but themselves, and the server keeps serving.
//
// Use it with the http.Server's ConnState hook, which tells the listener
// which connections are idle:
//
//	ln := connlimit.New(ln, 1000, logger)
//	srv := &http.Server{Handler: h, ConnState: ln.ConnState}
//	srv.Serve(ln)
package connlimit

import (
	"container/list"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// Listener is a net.Listener that holds at most Max connections open (one
// more while a new connection waits for a busy one to end).
type Listener struct {
	net.Listener
	max int
	log *slog.Logger

	mu      sync.Mutex
	free    *sync.Cond // a connection closed, went idle, or the listener closed
	open    int
	fresh   list.List // *conn in StateNew, oldest first
	idle    list.List // *conn in StateIdle, oldest first
	closed  bool
	evicted int64     // connections closed to make room, in all
	logged  time.Time // when the limit was last reported
	since   int64     // evictions since then
}

// New wraps ln. max must be at least 1. log, if not nil, gets a warning
// when the limit is reached (at most one a minute, with the count).
func New(ln net.Listener, max int, log *slog.Logger) *Listener {
	l := &Listener{Listener: ln, max: max, log: log}
	l.free = sync.NewCond(&l.mu)
	return l
}

// Max is the limit.
func (l *Listener) Max() int { return l.max }

// Open is how many accepted connections are open now.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Evicted is how many connections were closed to make room, in all.
func (l *Listener) Evicted() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.evicted
}

// conn is an accepted connection; its fields are guarded by the
// listener's mutex.
type conn struct {
	net.Conn
	l      *Listener
	elem   *list.Element // in fresh or idle, nil while serving a request
	queue  *list.List
	closed bool
}

// Accept accepts a connection and, over the limit, makes room for it.
func (l *Listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c := &conn{Conn: nc, l: l}
	l.open++
	for l.open > l.max && !l.closed {
		if v := l.victim(); v != nil {
			l.evict(v)
			continue
		}
		l.free.Wait()
	}
	if l.closed {
		l.open--
		nc.Close()
		return nil, net.ErrClosed
	}
	c.enqueue(&l.fresh)
	return c, nil
}

// victim is the connection to close for room: the oldest that has not sent
// a request, else the oldest idle one.
func (l *Listener) victim() *conn {
	for _, q := range []*list.List{&l.fresh, &l.idle} {
		if e := q.Front(); e != nil {
			return e.Value.(*conn)
		}
	}
	return nil
}

// evict closes v, counted as closed at once. Called with l.mu held; the
// close of a TCP socket does not block.
func (l *Listener) evict(v *conn) {
	v.forget()
	v.Conn.Close()
	l.evicted++
	l.since++
	if l.log != nil && time.Since(l.logged) >= time.Minute {
		l.log.Warn("connection limit reached: closing connections that sent no request or sat idle, to make room",
			"max_connections", l.max, "closed", l.since)
		l.logged, l.since = time.Now(), 0
	}
}

// Close stops accepting; a connection waiting for room is closed.
func (l *Listener) Close() error {
	l.mu.Lock()
	l.closed = true
	l.free.Broadcast()
	l.mu.Unlock()
	return l.Listener.Close()
}

// ConnState is the http.Server hook: it keeps the queues of connections
// that may be closed for room in the order they started doing nothing.
func (l *Listener) ConnState(nc net.Conn, state http.ConnState) {
	c, ok := nc.(*conn)
	if !ok || c.l != l {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.closed {
		return
	}
	switch state {
	case http.StateIdle:
		c.enqueue(&l.idle)
		l.free.Signal() // a connection waiting for room may take this one's
	case http.StateActive, http.StateHijacked:
		c.dequeue()
	case http.StateClosed:
		c.forget()
	}
}

// Close closes the connection and gives its place back.
func (c *conn) Close() error {
	c.l.mu.Lock()
	c.forget()
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// enqueue puts c at the back of q, out of the queue it was in.
func (c *conn) enqueue(q *list.List) {
	c.dequeue()
	c.elem, c.queue = q.PushBack(c), q
}

func (c *conn) dequeue() {
	if c.elem != nil {
		c.queue.Remove(c.elem)
		c.elem, c.queue = nil, nil
	}
}

// forget counts c as closed, once.
func (c *conn) forget() {
	if c.closed {
		return
	}
	c.closed = true
	c.dequeue()
	c.l.open--
	c.l.free.Signal()
}

// Default is the connection limit that leaves reserve file descriptors of
// the process's soft limit (RLIMIT_NOFILE) to everything else — and at
// least half of them, whatever the reserve. The Go runtime has already
// raised the soft limit to the hard one at start (since Go 1.19; child
// processes get the original back), so this is the most the process may
// open. It returns the limit and the soft limit it was taken from, or
// (0, 0) if the limit cannot be read.
func Default(reserve int) (limit, soft int) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return 0, 0
	}
	s := int(min(rl.Cur, 1<<30))
	return max(s-reserve, s/2), s
}
