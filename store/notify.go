package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Topic names a kind of signal a Notifier carries.
type Topic string

// Notifier carries small signals between every process sharing the
// database: "this job has new events", "jobs are ready", "cancel this job".
// A signal says only that something changed; receivers read what changed
// from the database, so a lost or repeated signal can delay them but never
// make them wrong.
//
// On SQLite (one process per database file) it is an in-process fan-out.
// On PostgreSQL it is also LISTEN/NOTIFY on one channel per schema: publishes
// are sent in batches, one statement for many signals, from a goroutine of
// their own, and a dedicated connection listens, reconnecting when it
// drops. Signals sent while it was reconnecting are lost, so after each
// reconnect, and every ResyncEvery as a slow fallback, it calls the resync
// functions: their owners re-read what they wait for.
//
// Subscribers run on the publishing goroutine (local signals) or on the
// listener (remote ones) and must not block.
type Notifier struct {
	db     *DB
	log    *slog.Logger
	origin string // this notifier's id, so it can skip its own signals coming back

	mu     sync.RWMutex
	subs   map[Topic][]*subscriber
	resync []func()

	// PostgreSQL only.
	channel string
	out     chan string // "origin|topic|payload" waiting to be sent
	ready   chan struct{}
	stop    context.CancelFunc
	done    sync.WaitGroup
	up      atomic.Bool // the listener is listening
}

// ResyncEvery is how often a shared notifier calls its resync functions
// even when no reconnect happened.
var ResyncEvery = 3 * time.Second

type subscriber struct{ fn func(string) }

// Shared reports whether signals reach other processes (PostgreSQL); when
// false the database has a single process and local signals are all.
func (n *Notifier) Shared() bool { return n.channel != "" }

// Subscribe calls fn with the payload of every signal on topic, local or
// remote, until the returned function is called.
func (n *Notifier) Subscribe(topic Topic, fn func(payload string)) (unsubscribe func()) {
	s := &subscriber{fn: fn}
	n.mu.Lock()
	n.subs[topic] = append(n.subs[topic], s)
	n.mu.Unlock()
	return func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		list := n.subs[topic]
		for i, x := range list {
			if x == s {
				n.subs[topic] = append(list[:i:i], list[i+1:]...)
				return
			}
		}
	}
}

// OnResync registers fn to run when signals may have been lost.
func (n *Notifier) OnResync(fn func()) {
	n.mu.Lock()
	n.resync = append(n.resync, fn)
	n.mu.Unlock()
}

// Publish delivers payload on topic to this process's subscribers at once
// and, on PostgreSQL, queues it for every other process. It never blocks:
// when the send queue is full the signal is dropped for the other
// processes, whose resync catches up.
func (n *Notifier) Publish(topic Topic, payload string) {
	n.deliver(topic, payload)
	if n.out == nil {
		return
	}
	select {
	case n.out <- n.origin + "|" + string(topic) + "|" + payload:
	default:
		n.log.Debug("notifier: send queue full, signal dropped", "topic", topic)
	}
}

// PublishRemote is Publish for signals this process has already acted on
// locally: it only tells the other processes.
func (n *Notifier) PublishRemote(topic Topic, payload string) {
	if n.out == nil {
		return
	}
	select {
	case n.out <- n.origin + "|" + string(topic) + "|" + payload:
	default:
	}
}

func (n *Notifier) deliver(topic Topic, payload string) {
	n.mu.RLock()
	list := n.subs[topic]
	n.mu.RUnlock()
	for _, s := range list {
		s.fn(payload)
	}
}

func (n *Notifier) runResync() {
	n.mu.RLock()
	fns := append([]func(){}, n.resync...)
	n.mu.RUnlock()
	for _, fn := range fns {
		fn()
	}
}

// Listening reports whether signals from other processes arrive now
// (always true on SQLite, where there are none).
func (n *Notifier) Listening() bool { return !n.Shared() || n.up.Load() }

// Ready waits until the listener is listening (at once on SQLite), so that
// a process that just started hears every signal sent after this returns.
func (n *Notifier) Ready(ctx context.Context) error {
	if n.ready == nil {
		return nil
	}
	select {
	case <-n.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func newNotifier(db *DB) *Notifier {
	b := make([]byte, 6)
	rand.Read(b)
	n := &Notifier{db: db, log: slog.Default(), origin: hex.EncodeToString(b), subs: map[Topic][]*subscriber{}}
	return n
}

// start begins listening on PostgreSQL; schema names the channel so that
// databases in different schemas of one server don't hear each other.
func (n *Notifier) start(schema string) {
	n.channel = "servicekit_" + schema
	if len(n.channel) > 63 {
		n.channel = n.channel[:63]
	}
	n.out = make(chan string, 16384)
	n.ready = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	n.done.Add(3)
	go func() { defer n.done.Done(); n.send(ctx) }()
	go func() { defer n.done.Done(); n.listen(ctx) }()
	go func() {
		defer n.done.Done()
		t := time.NewTicker(ResyncEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				n.runResync()
			}
		}
	}()
}

func (n *Notifier) close() {
	if n.stop != nil {
		n.stop()
		n.done.Wait()
	}
}

// send drains the queue in batches: one pg_notify statement per batch,
// with repeats within the batch sent once.
func (n *Notifier) send(ctx context.Context) {
	batch := make([]string, 0, 256)
	seen := map[string]struct{}{}
	for {
		batch = batch[:0]
		clear(seen)
		select {
		case <-ctx.Done():
			return
		case m := <-n.out:
			batch = append(batch, m)
			seen[m] = struct{}{}
		}
	fill:
		for len(batch) < 1000 {
			select {
			case m := <-n.out:
				if _, dup := seen[m]; !dup {
					seen[m] = struct{}{}
					batch = append(batch, m)
				}
			default:
				break fill
			}
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := n.db.W.ExecContext(sctx, "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", n.channel, batch)
		cancel()
		if err != nil && ctx.Err() == nil {
			n.log.Warn("notifier: send signals (other nodes catch up at their next resync)", "count", len(batch), "error", err)
		}
	}
}

// listen holds a dedicated connection in LISTEN and delivers what other
// processes publish, reconnecting with backoff when the connection drops.
func (n *Notifier) listen(ctx context.Context) {
	backoff := 50 * time.Millisecond
	first := true
	for ctx.Err() == nil {
		err := n.listenOnce(ctx, func() {
			backoff = 50 * time.Millisecond
			if first {
				first = false
				close(n.ready)
			} else {
				n.log.Info("notifier: listening again after a reconnect")
			}
			n.runResync() // signals sent while we were not listening are lost
		})
		if ctx.Err() != nil {
			return
		}
		n.log.Warn("notifier: listen connection lost; reconnecting", "error", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (n *Notifier) listenOnce(ctx context.Context, listening func()) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.Connect(cctx, n.db.dsn)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{n.channel}.Sanitize()); err != nil {
		return err
	}
	n.up.Store(true)
	defer n.up.Store(false)
	listening()
	for {
		// A connection cut without a FIN (a dead network path) would block
		// here forever; wake now and then and ping to find out.
		wctx, cancel := context.WithTimeout(ctx, ResyncEvery)
		note, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil || !pgconnTimeout(err) {
				return err
			}
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				return err
			}
			continue
		}
		origin, rest, ok := strings.Cut(note.Payload, "|")
		if !ok || origin == n.origin {
			continue // our own, delivered locally when published
		}
		topic, payload, _ := strings.Cut(rest, "|")
		n.deliver(Topic(topic), payload)
	}
}

func pgconnTimeout(err error) bool {
	return pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded)
}
