package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/servicekit/servicekit/bench"
)

type sseConfig struct {
	Bin, Dir string
	Clients  []int64
	Lines    int
	Sleep    string
	Pad      int
	SlowWith int
	SlowPad  int
	Window   time.Duration
}

func runSSE(ctx context.Context, args []string) error {
	var c sseConfig
	fs := flag.NewFlagSet("sse", flag.ExitOnError)
	fs.StringVar(&c.Bin, "bin", "", "server binary")
	fs.StringVar(&c.Dir, "dir", "", "working directory (emptied first)")
	clients := fs.String("clients", "0,1,10,100,1000", "stream clients of the one job, one run each (0: the job alone)")
	fs.IntVar(&c.Lines, "lines", 4000, "lines the job prints")
	fs.StringVar(&c.Sleep, "sleep", "0.005", "seconds the job sleeps after each line")
	fs.IntVar(&c.Pad, "pad", 100, "bytes of padding in each line")
	fs.IntVar(&c.SlowWith, "slow-with", 100, "also run this many clients without and then with one more that never reads (0: skip)")
	fs.IntVar(&c.SlowPad, "slow-pad", 2000, "bytes of padding in each line of the slow-client runs: the job's output must outgrow "+
		"the socket buffers (4 MiB on Linux) before a client that does not read can block the server's writes at all")
	fs.DurationVar(&c.Window, "window", time.Second, "delay percentiles are also taken per window of this long; the worst window is reported")
	fs.Parse(args)
	var err error
	if c.Clients, err = parseSizesOrZero(*clients); err != nil {
		return err
	}
	if c.Bin == "" || c.Dir == "" {
		return fmt.Errorf("sse needs -bin and -dir")
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		return err
	}
	var runs []*fanoutRun
	for _, n := range c.Clients {
		r, err := c.run(ctx, int(n), false, c.Pad)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	if c.SlowWith > 0 {
		for _, slow := range []bool{false, true} {
			r, err := c.run(ctx, c.SlowWith, slow, c.SlowPad)
			if err != nil {
				return err
			}
			runs = append(runs, r)
		}
	}
	c.print(os.Stdout, runs)
	return nil
}

// parseSizesOrZero is parseSizes that also takes 0.
func parseSizesOrZero(s string) ([]int64, error) {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		if strings.TrimSpace(f) == "0" {
			out = append(out, 0)
			continue
		}
		v, err := parseSizes(f)
		if err != nil {
			return nil, err
		}
		out = append(out, v...)
	}
	return out, nil
}

// fanoutRun is one job followed by Clients streams.
type fanoutRun struct {
	Clients   int
	Slow      bool
	Pad       int
	Wall      time.Duration // from $execute to the last client's terminal event (or the job's end with no clients)
	CPU       time.Duration // the server's, over Wall
	RSSBefore int64
	RSS, Peak int64
	Connected time.Duration // until every client had its first event
	Delays    delays        // of every log line at every normal client
	Missing   int           // lines a normal client did not get
	SlowEnd   string        // how the slow client's stream ended
}

// delays are, per line received, when it was received (since the job's
// $execute) and how long after the shell printed it.
type delays struct {
	mu        sync.Mutex
	at, delay []float32 // seconds, milliseconds
}

func (d *delays) add(at, delay []float32) {
	d.mu.Lock()
	d.at = append(d.at, at...)
	d.delay = append(d.delay, delay...)
	d.mu.Unlock()
}

func (c *sseConfig) command(padding int) string {
	pad := strings.Repeat("x", padding)
	// bash for $EPOCHREALTIME: each line carries the time it was printed,
	// so a client measures its delay without a clock of the server's.
	return fmt.Sprintf(`bash -c 'for i in $(seq 1 %d); do echo "line $i $EPOCHREALTIME %s"; sleep %s; done'`, c.Lines, pad, c.Sleep)
}

func (c *sseConfig) run(ctx context.Context, n int, slow bool, pad int) (*fanoutRun, error) {
	name := strconv.Itoa(n) + "-pad" + strconv.Itoa(pad)
	if slow {
		name += "+slow"
	}
	dir := filepath.Join(c.Dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	dbURL, err := sqliteURL(filepath.Join(dir, "db"))
	if err != nil {
		return nil, err
	}
	srv, err := startServer(ctx, c.Bin, dbURL, filepath.Join(dir, "server.log"), "--max-streams", strconv.Itoa(n+16))
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	taskID, err := srv.createTask(ctx, "shell", c.command(pad))
	if err != nil {
		return nil, err
	}
	r := &fanoutRun{Clients: n, Slow: slow, Pad: pad}
	m, err := bench.ReadMem(srv.pid())
	if err != nil {
		return nil, err
	}
	r.RSSBefore = m.RSS
	// One connection per client, as separate browsers would have.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = n + 1
	hc := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()

	cpu0, err := cpuTime(srv.pid())
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	jobID, err := srv.execute(ctx, taskID)
	if err != nil {
		return nil, err
	}
	var slowDone chan struct{}
	othersDone := make(chan struct{})
	if slow {
		slowDone = make(chan struct{})
		go func() { defer close(slowDone); r.SlowEnd = stalledClient(ctx, srv.base, jobID, t0, othersDone) }()
	}
	var wg sync.WaitGroup
	var firstMu sync.Mutex
	var lastFirst time.Duration
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := follow(ctx, hc, srv.base, jobID, t0, &r.Delays, func(d time.Duration) {
				firstMu.Lock()
				lastFirst = max(lastFirst, d)
				firstMu.Unlock()
			})
			if err != nil {
				errs <- err
				return
			}
			firstMu.Lock()
			r.Missing += c.Lines - got
			firstMu.Unlock()
		}()
	}
	wg.Wait()
	close(othersDone)
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	if n == 0 { // the job alone: wait for its end
		for {
			var rec jobTimes
			if err := srv.call(ctx, http.MethodGet, "/api/v1/jobs/"+jobID, nil, &rec); err != nil {
				return nil, err
			}
			if rec.FinishedAt != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	r.Wall = time.Since(t0)
	cpu1, err := cpuTime(srv.pid())
	if err != nil {
		return nil, err
	}
	r.CPU = cpu1 - cpu0
	r.Connected = lastFirst
	if m, err = bench.ReadMem(srv.pid()); err != nil {
		return nil, err
	}
	r.RSS, r.Peak = m.RSS, m.Peak
	if slow {
		<-slowDone
	}
	fmt.Fprintf(os.Stderr, "%s: wall %s, server CPU %s, RSS %s peak %s, delay p50 %s p99 %s\n",
		name, r.Wall.Round(time.Millisecond), r.CPU, mib(r.RSS), mib(r.Peak), r.Delays.p(50), r.Delays.p(99))
	return r, nil
}

// follow reads one job's stream to its terminal event, recording each log
// line's delay; it returns how many log lines it got.
func follow(ctx context.Context, hc *http.Client, base, jobID string, t0 time.Time, d *delays, first func(time.Duration)) (int, error) {
	res, err := openStream(ctx, hc, base, jobID)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	var at, delay []float32
	got, firstSeen, ended := 0, false, false
	err = readEvents(res.Body, func(event string, data []byte) bool {
		now := time.Now()
		if !firstSeen {
			firstSeen = true
			first(now.Sub(t0))
		}
		switch event {
		case "log":
			printed, ok := printedAt(data)
			if !ok {
				return true
			}
			got++
			at = append(at, float32(now.Sub(t0).Seconds()))
			delay = append(delay, float32(float64(now.UnixMicro()-printed)/1000))
		case "status":
			if _, end := terminal(data); end {
				ended = true
				return false
			}
		}
		return true
	})
	d.add(at, delay)
	if err == nil && !ended {
		err = fmt.Errorf("stream of %s ended before a terminal status", jobID)
	}
	return got, err
}

// printedAt reads the $EPOCHREALTIME of a line "line I SECONDS.MICROS pad"
// from a log event's data, in Unix microseconds.
func printedAt(data []byte) (int64, bool) {
	i := bytes.Index(data, []byte(`"line":"line `))
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(data[i+len(`"line":"line `):])
	if len(f) < 2 {
		return 0, false
	}
	sec, frac, ok := bytes.Cut(f[1], []byte("."))
	if !ok || len(frac) != 6 {
		return 0, false
	}
	s, err1 := strconv.ParseInt(string(sec), 10, 64)
	us, err2 := strconv.ParseInt(string(frac), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return s*1e6 + us, true
}

// stalledClient opens the job's stream over a socket with a small receive
// buffer and never reads it, the way a client that hung would. It watches
// the server's end of the connection in /proc/net/tcp until the server
// closes it or the other clients are done and 15 s more have passed (the
// server's write timeout is 10 s), and says what happened and when.
func stalledClient(ctx context.Context, base, jobID string, t0 time.Time, othersDone <-chan struct{}) string {
	addr := strings.TrimPrefix(base, "http://")
	d := net.Dialer{}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	fmt.Fprintf(conn, "GET /api/v1/jobs/%s/$stream HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", jobID, addr)
	serverPort := conn.RemoteAddr().(*net.TCPAddr).Port
	clientPort := conn.LocalAddr().(*net.TCPAddr).Port
	var giveUp <-chan time.Time
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	queued := int64(0)
	for {
		select {
		case <-ctx.Done():
			return "interrupted"
		case <-othersDone:
			othersDone, giveUp = nil, time.After(15*time.Second)
		case <-giveUp:
			return fmt.Sprintf("the server still held it 15 s after the job's end, %s queued to it", kib(queued))
		case <-tick.C:
			st, q, ok := tcpState(serverPort, clientPort)
			if !ok {
				return fmt.Sprintf("the server's end of it is gone (%.1f s after $execute)", time.Since(t0).Seconds())
			}
			if st != "01" { // no longer ESTABLISHED: the server closed its end
				return fmt.Sprintf("the server dropped it %.1f s after $execute, with %s it could not deliver", time.Since(t0).Seconds(), kib(q))
			}
			queued = q
		}
	}
}

// tcpState finds the server's end of a loopback connection in
// /proc/net/tcp: its state (01 is ESTABLISHED) and its send queue.
func tcpState(localPort, remotePort int) (string, int64, bool) {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return "", 0, false
	}
	local := fmt.Sprintf(":%04X", localPort)
	remote := fmt.Sprintf(":%04X", remotePort)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || !strings.HasSuffix(f[1], local) || !strings.HasSuffix(f[2], remote) {
			continue
		}
		tx, _, _ := strings.Cut(f[4], ":")
		q, _ := strconv.ParseInt(tx, 16, 64)
		return f[3], q, true
	}
	return "", 0, false
}

func kib(b int64) string { return fmt.Sprintf("%d KiB", b>>10) }

func (d *delays) p(pct float64) string {
	s := make(samples, len(d.delay))
	for i, v := range d.delay {
		s[i] = time.Duration(float64(v) * float64(time.Millisecond))
	}
	if len(s) == 0 {
		return "–"
	}
	return ms(s.p(pct))
}

// worstWindow is the highest p99 of the delays received in any one window.
func (d *delays) worstWindow(w time.Duration) string {
	buckets := map[int]samples{}
	for i, at := range d.at {
		k := int(float64(at) / w.Seconds())
		buckets[k] = append(buckets[k], time.Duration(float64(d.delay[i])*float64(time.Millisecond)))
	}
	var worst time.Duration
	for _, s := range buckets {
		if len(s) >= 100 { // a window with few lines says nothing of its p99
			worst = max(worst, s.p(99))
		}
	}
	if worst == 0 {
		return "–"
	}
	return ms(worst)
}

func (c *sseConfig) print(w io.Writer, runs []*fanoutRun) {
	fmt.Fprintf(w, "\nOne shell job printing %d lines, sleeping %s s after each; delay = received − printed ($EPOCHREALTIME)\n\n", c.Lines, c.Sleep)
	fmt.Fprintln(w, "| clients | line | server CPU (% of a core) | server CPU per line delivered, beyond the job alone | RSS before → after (peak) | delay p50 / p99 / max | worst "+c.Window.String()+" p99 | all connected after | lines missed |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	var alone *fanoutRun // the job with no client: what delivering costs on top of it
	for _, r := range runs {
		if r.Clients == 0 {
			alone = r
		}
	}
	for _, r := range runs {
		name := strconv.Itoa(r.Clients)
		if r.Slow {
			name += " + 1 that never reads"
		}
		per := "–"
		if r.Clients > 0 && alone != nil && r.Pad == alone.Pad {
			if d := r.CPU - alone.CPU; d > 0 {
				per = fmt.Sprintf("%.1f µs", float64(d.Microseconds())/float64(r.Clients*c.Lines))
			} else {
				per = "within the noise"
			}
		}
		conn := "–"
		if r.Clients > 0 {
			conn = ms(r.Connected)
		}
		fmt.Fprintf(w, "| %s | %d B | %.2f s over %.1f s (%.0f %%) | %s | %s → %s (%s) | %s / %s / %s | %s | %s | %d |\n",
			name, len("line 1234 1796171971.123456 \n")+r.Pad, r.CPU.Seconds(), r.Wall.Seconds(), 100*r.CPU.Seconds()/r.Wall.Seconds(), per,
			mib(r.RSSBefore), mib(r.RSS), mib(r.Peak), r.Delays.p(50), r.Delays.p(99), r.Delays.p(100),
			r.Delays.worstWindow(c.Window), conn, r.Missing)
	}
	for _, r := range runs {
		if r.Slow {
			fmt.Fprintf(w, "\nThe client that never read: %s.\n", r.SlowEnd)
		}
	}
}
