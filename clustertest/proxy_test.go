package clustertest

// A TCP proxy between one node and PostgreSQL, which the test cuts.

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// cutMode is how a proxy cuts the node off.
type cutMode int

const (
	// closeAll closes every forwarded connection (the node sees EOF or a
	// reset at once) and closes the listener, so new connects are refused.
	closeAll cutMode = iota
	// blackhole keeps every connection open but forwards nothing any more,
	// and accepts new connections that never answer: a dead network path,
	// where only timeouts tell the node it is cut off.
	blackhole
)

func (m cutMode) String() string {
	if m == blackhole {
		return "blackhole"
	}
	return "close"
}

// proxy forwards TCP connections from its listener to target until Cut.
type proxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is where the node should connect instead of target.
func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if cut { // blackholed: hold it open, read and drop what comes
			p.wg.Add(1)
			go func() { defer p.wg.Done(); io.Copy(io.Discard, c) }()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(up) {
			c.Close()
			up.Close()
			return
		}
		p.wg.Add(2)
		go func() { defer p.wg.Done(); p.pipe(up, c) }()
		go func() { defer p.wg.Done(); p.pipe(c, up) }()
	}
}

// track registers c so Cut and close can reach it; false once closed.
func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

// pipe copies from src to dst until either ends; after a blackhole cut it
// keeps reading src but drops everything.
func (p *proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			cut := p.cut
			p.mu.Unlock()
			if !cut {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					src.Close()
					return
				}
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

// Cut cuts the node off from the database as mode says.
func (p *proxy) Cut(mode cutMode) {
	p.mu.Lock()
	p.cut = true
	var conns []net.Conn
	if mode == closeAll {
		for c := range p.conns {
			conns = append(conns, c)
		}
	}
	p.mu.Unlock()
	if mode == closeAll {
		p.ln.Close()
		for _, c := range conns {
			c.Close()
		}
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for c := range conns {
		c.Close()
	}
	p.wg.Wait()
}

// viaProxy rewrites a PostgreSQL URL to go through the proxy at addr.
func viaProxy(t *testing.T, dbURL, addr string) (target, proxied string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	target = u.Host
	u.Host = addr
	return target, u.String()
}
