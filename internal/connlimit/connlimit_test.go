package connlimit

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// serve runs a real http.Server on a loopback listener limited to max.
// GET /slow blocks until release is closed; everything else answers "ok".
func serve(t *testing.T, max int, release <-chan struct{}) (*Listener, string) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(raw, max, nil)
	srv := &http.Server{ConnState: l.ConnState, ReadHeaderTimeout: time.Minute,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				<-release
			}
			io.WriteString(w, "ok")
		})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l, raw.Addr().String()
}

// eventually polls cond until it holds, failing after 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func get(addr, path string) (string, error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	res, err := c.Get("http://" + addr + path)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
}

// closed reports whether the server closed c: a read sees EOF (or a
// reset) at once, where an open idle connection would wait.
func closed(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// TestIdleConnectionsMakeRoom: sockets that never send a request take no
// room from a client that does; the process never holds more than the cap.
func TestIdleConnectionsMakeRoom(t *testing.T) {
	l, addr := serve(t, 5, nil)
	var idle []net.Conn
	for range 50 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	eventually(t, "the 50 idle connections accepted, all but 5 closed", func() bool { return l.Evicted() >= 45 })
	if n := l.Open(); n > 5 {
		t.Fatalf("%d connections open, cap 5", n)
	}
	for i := range 20 {
		if body, err := get(addr, "/"); err != nil || body != "ok" {
			t.Fatalf("request %d beside idle sockets: %q %v", i, body, err)
		}
	}
	// The oldest went first: the first idle sockets are closed, the last
	// ones (newer than any request) may still be open.
	if !closed(idle[0]) {
		t.Fatal("the oldest idle connection is still open")
	}
}

// TestOldestIdleGoesFirst: a connection that has not sent a request goes
// before one idle between requests, and among them the oldest first.
func TestOldestIdleGoesFirst(t *testing.T) {
	l, addr := serve(t, 2, nil)
	// keepAlive: one request done, then idle.
	keepAlive, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer keepAlive.Close()
	io.WriteString(keepAlive, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	buf := make([]byte, 512)
	if n, err := keepAlive.Read(buf); err != nil || n == 0 {
		t.Fatalf("keep-alive request: %v", err)
	}
	eventually(t, "the keep-alive connection idle", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.idle.Len() == 1
	})
	fresh, err := net.Dial("tcp", addr) // never sends anything
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	eventually(t, "both accepted", func() bool { return l.Open() == 2 })

	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	eventually(t, "one closed for the third", func() bool { return l.Evicted() == 1 })
	if !closed(fresh) || closed(keepAlive) {
		t.Fatal("want the connection that sent nothing closed before the idle keep-alive one")
	}
	fourth, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer fourth.Close()
	eventually(t, "another closed for the fourth", func() bool { return l.Evicted() == 2 })
	if !closed(third) {
		t.Fatal("want the older of the two that sent nothing closed")
	}
	if closed(keepAlive) {
		t.Fatal("the idle keep-alive connection closed while one that sent nothing was open")
	}
}

// TestBusyConnectionsAreNeverClosed: at the cap with every connection
// serving a request, a new one waits for one to finish; none is cut.
func TestBusyConnectionsAreNeverClosed(t *testing.T) {
	release := make(chan struct{})
	l, addr := serve(t, 3, release)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, err := get(addr, "/slow")
			if err == nil && body != "ok" {
				err = errors.New("body " + body)
			}
			errs <- err
		}()
	}
	eventually(t, "3 slow requests being served", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.open == 3 && l.fresh.Len() == 0 && l.idle.Len() == 0
	})
	done := make(chan error, 1)
	go func() { _, err := get(addr, "/"); done <- err }()
	eventually(t, "the 4th connection accepted and waiting", func() bool { return l.Open() == 4 })
	select {
	case err := <-done:
		t.Fatalf("4th request answered while every connection was busy (%v)", err)
	default:
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("4th request after a slot freed: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a busy connection was cut: %v", err)
		}
	}
	if l.Evicted() != 0 {
		t.Fatalf("%d connections closed for room; none was idle", l.Evicted())
	}
}

// TestCloseWhileWaiting: shutting down releases an Accept that waits for room.
func TestCloseWhileWaiting(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(raw, 1, nil)
	a, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	first, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	l.ConnState(first, http.StateActive) // busy: not to be closed
	b, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	accepted := make(chan error, 1)
	go func() { _, err := l.Accept(); accepted <- err }()
	eventually(t, "second connection waiting", func() bool { return l.Open() == 2 })
	l.Close()
	if err := <-accepted; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
	first.Close()
	if n := l.Open(); n != 0 {
		t.Fatalf("%d open after all closed", n)
	}
}

// TestDefaultLeavesReserve: the default cap keeps the reserve of the soft
// file descriptor limit, and half of it whatever the reserve.
func TestDefaultLeavesReserve(t *testing.T) {
	limit, soft := Default(300)
	if soft == 0 {
		t.Skip("RLIMIT_NOFILE unreadable here")
	}
	if want := max(soft-300, soft/2); limit != want {
		t.Fatalf("Default(300) = %d with soft limit %d, want %d", limit, soft, want)
	}
	if l, _ := Default(soft * 2); l != soft/2 {
		t.Fatalf("a reserve above the limit leaves %d, want half (%d)", l, soft/2)
	}
}
