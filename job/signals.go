package job

import (
	"container/heap"
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/servicekit/servicekit/store"
)

// The signals nodes send each other through the database's notifier. Each
// names what changed; receivers read the rest from the database.
const (
	// topicJob: the job (payload: its id) has new events; wakes $stream,
	// Wait and Cancel on every node.
	topicJob store.Topic = "job"
	// topicReady: jobs are ready, now (empty payload) or at a Unix ms time;
	// wakes idle dispatchers on every node.
	topicReady store.Topic = "ready"
	// topicCancel: "level:attempt:id", stop that run; only its owner acts.
	topicCancel store.Topic = "cancel"
)

// listen subscribes the scheduler to the other nodes' signals.
func (s *Scheduler) listen() {
	s.unsub = append(s.unsub,
		s.notify.Subscribe(topicJob, s.hub.notify),
		s.notify.Subscribe(topicReady, func(p string) {
			if ms, err := strconv.ParseInt(p, 10, 64); err == nil && ms > time.Now().UnixMilli() {
				s.wakeAt(time.UnixMilli(ms))
				return
			}
			s.backlog.Store(true)
			s.kick()
		}),
		s.notify.Subscribe(topicCancel, func(p string) {
			level, rest, _ := strings.Cut(p, ":")
			att, id, _ := strings.Cut(rest, ":")
			lv, _ := strconv.Atoi(level)
			attempt, _ := strconv.Atoi(att)
			s.cancelLocal(id, attempt, cancelCause(lv))
		}),
	)
	s.notify.OnResync(s.resync)
}

// resync runs when signals may have been lost (the listener reconnected)
// and every few seconds as a fallback on PostgreSQL: every waiter re-reads
// its job, the dispatcher looks for work if some is ready, and cancels
// recorded in the database are carried out.
func (s *Scheduler) resync() {
	if s.closing.Load() {
		return
	}
	s.hub.notifyAll()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var ready int
		if s.RunningCount() < s.opt.MaxConcurrency &&
			s.db.QueryRow(ctx, s.q.CountReady, time.Now().UnixMilli()).Scan(&ready) == nil && ready > 0 {
			s.backlog.Store(true)
			s.kick()
		}
		if s.RunningCount() > 0 {
			if err := s.pickUpCancels(ctx); err != nil && !s.closing.Load() {
				s.log.Debug("resync: read cancel requests", "error", err)
			}
		}
	}()
}

// changed tells every waiter on every node that job id has new events.
func (s *Scheduler) changed(id string) { s.notify.Publish(topicJob, id) }

// Subscribe returns a channel that receives a value (coalesced) after each
// change to the job, made on any node, and a function to stop.
func (s *Scheduler) Subscribe(jobID string) (<-chan struct{}, func()) {
	return s.hub.subscribe(jobID)
}

// hub tells in-process waiters that a job has new events. It carries no
// data: a woken waiter reads what is new from the database, so what it sees
// is exactly what was committed, in order, whichever node wrote it.
type hub struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

func newHub() *hub { return &hub{subs: map[string]map[chan struct{}]struct{}{}} }

func (h *hub) subscribe(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	m := h.subs[id]
	if m == nil {
		m = map[chan struct{}]struct{}{}
		h.subs[id] = m
	}
	m[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(m, ch)
		if len(m) == 0 && len(h.subs[id]) == 0 {
			delete(h.subs, id)
		}
		h.mu.Unlock()
	}
}

func (h *hub) notify(id string) {
	h.mu.Lock()
	for ch := range h.subs[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	h.mu.Unlock()
}

func (h *hub) notifyAll() {
	h.mu.Lock()
	for _, m := range h.subs {
		for ch := range m {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	h.mu.Unlock()
}

// wakeTimes holds every time at which a delayed job becomes ready, as a
// min-heap, so the dispatcher's one timer is always armed for the earliest
// and none is dropped when several are due at different times.
type wakeTimes struct {
	mu      sync.Mutex
	h       msHeap
	changed chan struct{} // coalesced: a time was added
}

type msHeap []int64

func (h msHeap) Len() int           { return len(h) }
func (h msHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h msHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *msHeap) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *msHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// wakeAt asks the dispatcher to look for work at t.
func (s *Scheduler) wakeAt(t time.Time) {
	w := &s.wakes
	w.mu.Lock()
	heap.Push(&w.h, t.UnixMilli())
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// popDue removes the times that are due and reports whether any was, and
// the earliest time still to come (zero if none).
func (w *wakeTimes) popDue(now time.Time) (due bool, next time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ms := now.UnixMilli()
	for len(w.h) > 0 && w.h[0] <= ms {
		heap.Pop(&w.h)
		due = true
	}
	if len(w.h) > 0 {
		next = time.UnixMilli(w.h[0])
	}
	return due, next
}
