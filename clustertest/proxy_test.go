package clustertest

// A TCP proxy between one node and PostgreSQL, which the test cuts and heals.

import (
	"bufio"
	"bytes"
	be "encoding/binary"
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
	// reset at once) and the listener, so new connects are refused.
	closeAll cutMode = iota
	// blackhole keeps every connection open but passes nothing on until
	// Heal, and holds new connections unanswered: a network path gone dead,
	// where only timeouts tell the node it is cut off. What was sent
	// meanwhile arrives after Heal, as TCP would retransmit it.
	blackhole
)

func (m cutMode) String() string {
	if m == blackhole {
		return "blackhole"
	}
	return "close"
}

// proxy forwards TCP connections from its address to target.
type proxy struct {
	t      *testing.T
	addr   string
	target string

	mu     sync.Mutex
	ln     net.Listener
	cut    bool
	healed *sync.Cond // broadcast when cut becomes false or the proxy closes
	closed bool
	// trigger, if set, is a statement text: once a client has sent the
	// execution of a statement containing it, the proxy blackholes.
	trigger string
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, addr: ln.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	p.healed = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept(ln)
	t.Cleanup(p.close)
	return p
}

// Addr is where the node should connect instead of target.
func (p *proxy) Addr() string { return p.addr }

func (p *proxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if !p.waitPassable() { // a connection made while blackholed waits unanswered
				c.Close()
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				return
			}
			if !p.track(up) {
				up.Close()
				c.Close()
				return
			}
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.pipeClient(up, c) }()
			p.pipe(c, up)
		}()
	}
}

// track registers c so Cut, Heal and close can reach it; false once closed.
func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// waitPassable blocks while the proxy is cut; false once it closed.
func (p *proxy) waitPassable() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.cut && !p.closed {
		p.healed.Wait()
	}
	return !p.closed
}

// pipe copies from src to dst until either ends, holding data back while
// the proxy is cut.
func (p *proxy) pipe(dst, src net.Conn) {
	defer p.untrack(src)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.waitPassable() {
				src.Close()
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				src.Close()
			}
			dst.Close()
			return
		}
	}
}

// isCut reports whether the proxy is cut now.
func (p *proxy) isCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

// CutAfter arms a blackhole cut that falls right after a client sent the
// execution of a statement whose text contains query: the database runs
// it, and then hears nothing more from the node, so the node's transaction
// stays open, holding the row locks the statement took.
func (p *proxy) CutAfter(query string) {
	p.mu.Lock()
	p.trigger = query
	p.mu.Unlock()
}

// pipeClient forwards client-to-server traffic message by message (the
// PostgreSQL frontend protocol: an untyped startup message, then a type
// byte and a length each), watching for the armed trigger: statements
// are parsed by name ('P') and run by a bind ('B') naming one, or sent as
// a simple query ('Q'); the cut falls after the Sync ('S') that ends the
// triggering execution.
func (p *proxy) pipeClient(dst, src net.Conn) {
	defer p.untrack(src)
	defer dst.Close()
	r := bufio.NewReaderSize(src, 64<<10)
	startup := true
	stmts := map[string][]byte{} // prepared statement name → text
	fire := false
	for {
		var head []byte
		var typ byte
		if startup {
			head = make([]byte, 4)
		} else {
			head = make([]byte, 5)
		}
		if _, err := io.ReadFull(r, head); err != nil {
			return
		}
		if !startup {
			typ = head[0]
		}
		n := int(be.BigEndian.Uint32(head[len(head)-4:])) - 4
		if n < 0 || n > 1<<30 {
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		if startup {
			// SSL and GSSAPI encryption requests come before the real startup message.
			code := uint32(0)
			if len(body) >= 4 {
				code = be.BigEndian.Uint32(body)
			}
			startup = code == 80877103 || code == 80877104
		}
		p.mu.Lock()
		trigger := p.trigger
		p.mu.Unlock()
		switch f := bytes.SplitN(body, []byte{0}, 3); typ {
		case 'P': // Parse: statement name, query text
			if len(f) >= 2 {
				stmts[string(f[0])] = f[1]
			}
		case 'B': // Bind: portal name, statement name
			if len(f) >= 2 && trigger != "" && bytes.Contains(stmts[string(f[1])], []byte(trigger)) {
				fire = true
			}
		case 'Q': // simple query
			fire = fire || trigger != "" && bytes.Contains(body, []byte(trigger))
		}
		if !p.waitPassable() {
			return
		}
		if _, err := dst.Write(append(head, body...)); err != nil {
			return
		}
		if fire && (typ == 'S' || typ == 'Q') {
			fire = false
			p.mu.Lock()
			armed := p.trigger != ""
			p.trigger = ""
			p.mu.Unlock()
			if armed {
				p.Cut(blackhole)
			}
		}
	}
}

// Cut cuts the node off from the database as mode says.
func (p *proxy) Cut(mode cutMode) {
	p.mu.Lock()
	p.cut = true
	var conns []net.Conn
	ln := p.ln
	if mode == closeAll {
		for c := range p.conns {
			conns = append(conns, c)
		}
		p.ln = nil
	}
	p.mu.Unlock()
	if mode == closeAll {
		ln.Close()
		for _, c := range conns {
			c.Close()
		}
	}
}

// Heal lets traffic pass again: a closed listener listens again on the same
// address, and held data and connections go through.
func (p *proxy) Heal() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			p.t.Fatalf("proxy: listen again on %s: %v", p.addr, err)
		}
		p.ln = ln
		p.wg.Add(1)
		go p.accept(ln)
	}
	p.cut = false
	p.healed.Broadcast()
}

func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.healed.Broadcast()
	if p.ln != nil {
		p.ln.Close()
	}
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	for c := range conns {
		c.Close()
	}
	p.wg.Wait()
}

// viaProxy returns the host:port of a PostgreSQL URL and the URL with that
// replaced by addr.
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
