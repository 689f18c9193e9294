package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/servicekit/servicekit/job"
)

// KeepAlive is how often an idle $stream sends a comment line, so proxies
// and clients can tell a quiet job from a dead connection.
var KeepAlive = 15 * time.Second

// Defaults of StreamLimits.
const (
	// DefaultMaxStreams is the cap on $stream responses open at once on
	// one server. Each holds a connection and at most StreamBuffer bytes.
	DefaultMaxStreams = 1000
	// DefaultStreamWriteTimeout is how long one write to a $stream client
	// may block before the client is dropped: 64 KiB in 10 s is a client
	// slower than 6.4 KB/s, or one that stopped reading.
	DefaultStreamWriteTimeout = 10 * time.Second
)

// StreamBuffer is the most a $stream holds of events read but not yet
// written to its client (one larger event is sent whole). It bounds the
// memory of a stream whatever the job's backlog: the rest is read again
// from the database once this much is on its way.
const StreamBuffer = 64 << 10

// StreamLimits bound the $stream responses of one HTTP server.
type StreamLimits struct {
	// Max is how many may be open at once; over it a request is answered
	// 429 with Retry-After. 0 means DefaultMaxStreams.
	Max int
	// WriteTimeout is how long one write may wait for a client to read;
	// past it the client is dropped (it resumes with Last-Event-ID).
	// 0 means DefaultStreamWriteTimeout.
	WriteTimeout time.Duration
}

// streamLimit is StreamLimits in force, with the count of open streams.
type streamLimit struct {
	max   int64
	write time.Duration
	open  atomic.Int64
}

func newStreamLimit(l StreamLimits) *streamLimit {
	if l.Max <= 0 {
		l.Max = DefaultMaxStreams
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = DefaultStreamWriteTimeout
	}
	return &streamLimit{max: int64(l.Max), write: l.WriteTimeout}
}

func (l *streamLimit) acquire() bool {
	if l.open.Add(1) > l.max {
		l.open.Add(-1)
		return false
	}
	return true
}

func (l *streamLimit) release() { l.open.Add(-1) }

type streamLimitKey struct{}

// WithStreamLimits returns a context under which all $stream requests
// share one cap. servicekit's Serve gives it to its http.Server as the
// BaseContext, which makes the cap one per server; a Server mounted in a
// program's own http.Server without it has its own cap of DefaultMaxStreams.
func WithStreamLimits(ctx context.Context, l StreamLimits) context.Context {
	return context.WithValue(ctx, streamLimitKey{}, newStreamLimit(l))
}

// streamer serves the $stream responses of one Server. What it holds is
// bounded at any number of clients: a client holds at most one chunk of
// StreamBuffer bytes, clients at the same place of the same job share
// that chunk and the read that made it, only a few reads run at once, and
// the chunks a read made beyond the one asked for wait in a cache of
// cachedChunks entries.
type streamer struct {
	s     *Server
	limit *streamLimit // when the request context brings none
	reads chan struct{}
	group singleflight.Group
	// ahead holds complete chunks by job id and the event id they follow.
	// The job engine reads all events after an id at once, so a read of
	// a long backlog makes its following chunks too: a client replaying
	// the backlog then costs one read per chunksPerRead chunks instead of
	// one per chunk, each decoding the whole rest again.
	ahead *lru.Cache[string, *chunk]
}

const (
	// chunksPerRead is how many chunks one read makes at most (2 MiB).
	chunksPerRead = 32
	// cachedChunks bounds the cache: 16 MiB at StreamBuffer each.
	cachedChunks = 256
)

func newStreamer(s *Server) *streamer {
	// Streams may keep at most this many database connections busy, so
	// that /health and the API still find one with any number of streams
	// (the read pool has at least 4). A read decodes the job's backlog,
	// which is CPU work: more reads at once than cores gain nothing.
	n := max(2, runtime.GOMAXPROCS(0)/2)
	ahead, _ := lru.New[string, *chunk](cachedChunks)
	return &streamer{s: s, limit: newStreamLimit(StreamLimits{}), reads: make(chan struct{}, n), ahead: ahead}
}

func chunkKey(id string, after int64) string { return id + "/" + strconv.FormatInt(after, 10) }

// chunk is SSE text for the events of a job after some event id, at most
// StreamBuffer bytes of it. It is shared by every client at that id, so it
// is never changed once made.
type chunk struct {
	prev int64 // the event id it follows
	data []byte
	last int64 // id of the last event in data; the id asked for when none
	done bool  // data ends with the job's terminal status, or its deletion
	more bool  // events were left out to stay within StreamBuffer
	gone bool  // the job does not exist (data says "deleted")
}

// serve writes a job's events as SSE: first those stored after `after`
// (first, the chunk the caller read once it had subscribed to the job's
// changes on changed), then each new batch as the scheduler signals a change. A
// woken stream reads only what is new, so no client polls the database on
// a timer.
func (st *streamer) serve(w http.ResponseWriter, r *http.Request, id string, after int64, first *chunk, changed <-chan struct{}) {
	ctx := r.Context()
	limit, _ := ctx.Value(streamLimitKey{}).(*streamLimit)
	if limit == nil {
		limit = st.limit
	}
	if !limit.acquire() {
		p := problemf(http.StatusTooManyRequests, "%d event streams are open on this server, its cap (--max-streams); "+
			"retry after a few seconds, or read the job without a stream: GET /api/v1/jobs/%s and its $logs", limit.max, id)
		p.header = http.Header{"Retry-After": {"5"}}
		writeProblem(w, r, p)
		return
	}
	defer limit.release()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	// The connection ends with the stream. Its writes carry deadlines,
	// which net/http (without a WriteTimeout, for streams' sake) would
	// leave on the connection for the next request to inherit; and the
	// end of the response is written after this returns, so it keeps one.
	h.Set("Connection", "close")
	rc := http.NewResponseController(w)
	defer func() { rc.SetWriteDeadline(time.Now().Add(limit.write)) }()
	send := func(b []byte) bool {
		// A client that stops reading blocks the write once the socket
		// buffers are full; the deadline ends that wait, the stream returns
		// and the connection closes, and the client resumes with
		// Last-Event-ID from the last event it got. A writer that cannot
		// take deadlines (not a network connection) is written as is.
		rc.SetWriteDeadline(time.Now().Add(limit.write))
		if len(b) > 0 {
			if _, err := w.Write(b); err != nil {
				return false
			}
		}
		return rc.Flush() == nil
	}
	w.WriteHeader(http.StatusOK)
	if !send(nil) {
		return
	}
	keep := time.NewTicker(KeepAlive)
	defer keep.Stop()
	for {
		c, err := first, error(nil)
		if c == nil {
			c, err = st.load(ctx, id, after)
		}
		first = nil
		if err != nil {
			if ctx.Err() == nil {
				st.s.d.Logger.Warn("stream job events", "job_id", id, "error", err)
			}
			return
		}
		if len(c.data) > 0 && !send(c.data) {
			return
		}
		after = c.last
		if c.done {
			return
		}
		if c.more {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-keep.C:
			if !send([]byte(": keep-alive\n\n")) {
				return
			}
		}
	}
}

// load returns the chunk of job id after event `after`. Clients asking for
// the same chunk at the same time get the one read: 200 clients of a
// chatty job wake on each change and, caught up, all ask for the same.
func (st *streamer) load(ctx context.Context, id string, after int64) (*chunk, error) {
	key := chunkKey(id, after)
	if c, ok := st.ahead.Get(key); ok {
		return c, nil
	}
	ch := st.group.DoChan(key, func() (any, error) { return st.read(id, after) })
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*chunk), nil
	}
}

// read makes a chunk from the database. It runs for all the clients that
// wait on it, so it is bounded by a timeout of its own rather than by any
// one client's context.
func (st *streamer) read(id string, after int64) (*chunk, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	select {
	case st.reads <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting to read events: %w", ctx.Err())
	}
	defer func() { <-st.reads }()
	events, err := st.s.d.Jobs.EventsAfter(ctx, id, after)
	if err != nil {
		return nil, err
	}
	if len(events) == 0 {
		c := &chunk{prev: after, last: after}
		if _, err := st.s.d.Jobs.Get(ctx, id); errors.Is(err, job.ErrNotFound) {
			c.data = fmt.Appendf(nil, "id: %d\nevent: status\ndata: {\"id\":%q,\"status\":\"deleted\"}\n\n", after+1, id)
			c.last, c.done, c.gone = after+1, true, true
		}
		return c, nil
	}
	var first *chunk
	for n := 0; n < chunksPerRead && len(events) > 0; n++ {
		c, rest := cut(events, after)
		events, after = rest, c.last
		if first == nil {
			first = c
		}
		// A complete chunk stays true whatever the job adds later, which
		// comes after it. One holding a single oversized event is not kept.
		if (c.more || c.done) && len(c.data) <= StreamBuffer {
			st.ahead.Add(chunkKey(id, c.prev), c)
		}
		if c.done {
			break
		}
	}
	return first, nil
}

// cut makes the chunk of the first events that fit in StreamBuffer (at
// least one) and returns the events left.
func cut(events []job.Event, after int64) (*chunk, []job.Event) {
	size, n := 0, 0
	for i, e := range events {
		f := frameSize(e)
		if i > 0 && size+f > StreamBuffer {
			break
		}
		size += f
		n++
	}
	c := &chunk{prev: after, last: after, data: make([]byte, 0, size)} // measured first: allocated once
	for _, e := range events[:n] {
		c.data = fmt.Appendf(c.data, "id: %d\nevent: %s\ndata: %s\n\n", e.ID, e.Kind, e.Data)
		c.last = e.ID
		if e.Kind == "status" && e.Status.Terminal() {
			c.done = true
			return c, nil
		}
	}
	c.more = n < len(events)
	return c, events[n:]
}

// frameSize is the length of an event's SSE frame as read writes it.
func frameSize(e job.Event) int {
	return len("id: \nevent: \ndata: \n\n") + len(strconv.FormatInt(e.ID, 10)) + len(e.Kind) + len(e.Data)
}
