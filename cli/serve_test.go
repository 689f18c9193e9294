package cli

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/servicekit/servicekit"
)

func TestServeRefusesExposedUnsafeServer(t *testing.T) {
	root := NewRootCommand(servicekit.Info{})
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"serve", "--addr", "0.0.0.0:0", "--database", "sqlite://:memory:"})
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), "not a loopback address") || !strings.Contains(err.Error(), "--insecure") ||
		!strings.Contains(err.Error(), "SERVICEKIT_API_KEYS") {
		t.Fatalf("want a refusal that explains the fixes, got %v", err)
	}
	for _, c := range []struct {
		addr     string
		keys     bool
		insecure bool
	}{{"127.0.0.1:8000", false, false}, {"localhost:8000", false, false}, {"[::1]:8000", false, false},
		{"0.0.0.0:8000", true, false}, {"0.0.0.0:8000", false, true}} {
		if err := checkExposure(c.addr, c.keys, c.insecure); err != nil {
			t.Errorf("%+v refused: %v", c, err)
		}
	}
	if checkExposure("192.168.1.5:80", false, false) == nil || checkExposure(":8000", false, false) == nil {
		t.Error("non-loopback addresses accepted")
	}
}

// TestServeWithKeyFile runs the real serve path with keys from a file and
// from SERVICEKIT_API_KEYS on a non-loopback address.
func TestServeWithKeyFile(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "keys")
	os.WriteFile(keyFile, []byte("# ops\nfile-key\n"), 0o600)
	c := ServeConfig{Addr: "0.0.0.0:0", Database: "sqlite:///" + filepath.Join(dir, "t.db"), MaxConcurrency: 2,
		OutputLimit: 1 << 20, ShutdownTimeout: time.Second, LogLevel: "warn", APIKeyFile: keyFile,
		APIKeys: []string{"env-key"}, APIKeyHeader: "X-API-Key"}
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, servicekit.Info{}, c, func(a net.Addr) { addrc <- a }) }()
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatal(err)
	}
	port := addr.(*net.TCPAddr).Port
	get := func(key string) int {
		req, _ := http.NewRequest("GET", "http://127.0.0.1:"+strconv.Itoa(port)+"/api/v1/tasks", nil)
		if key != "" {
			req.Header.Set("X-API-Key", key)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if get("") != 401 || get("file-key") != 200 || get("env-key") != 200 || get("other") != 401 {
		t.Fatal("keys from the file and the environment not both enforced")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestServePortInUse starts serve on a port another listener holds, with
// the default database: it must fail at once, say how to pick another
// address, and not have created ./servicekit.db.
func TestServePortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	t.Chdir(t.TempDir())
	t.Setenv("SERVICEKIT_DATABASE_URL", "")
	r := runCLI(t, "serve", "--addr", busy.Addr().String())
	if r.code != ExitJobFailed {
		t.Errorf("exit %d, want %d", r.code, ExitJobFailed)
	}
	contains(t, "port in use", r.stderr, "servicekit: cannot listen on "+busy.Addr().String(),
		"already in use", "--addr HOST:PORT or SERVICEKIT_ADDR", "e.g. --addr "+nextPort(busy.Addr().String()))
	if p := busy.Addr().(*net.TCPAddr).Port; nextPort(busy.Addr().String()) != "127.0.0.1:"+strconv.Itoa(p+1) {
		t.Errorf("nextPort(%s) = %s", busy.Addr(), nextPort(busy.Addr().String()))
	}
	if strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("want one line, got:\n%s", r.stderr)
	}
	if _, err := os.Stat("servicekit.db"); !os.IsNotExist(err) {
		t.Errorf("servicekit.db was created (stat: %v)", err)
	}
}

// TestServeLogsConsoleURL reads the startup line: it names the console URL.
func TestServeLogsConsoleURL(t *testing.T) {
	var logs syncBuffer
	c := ServeConfig{Addr: "127.0.0.1:0", Database: "sqlite://:memory:", MaxConcurrency: 1, OutputLimit: 1 << 10,
		ShutdownTimeout: time.Second, LogLevel: "info", LogOutput: &logs}
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, servicekit.Info{}, c, func(a net.Addr) { addrc <- a }) }()
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	line := ""
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, "servicekit listening") {
			line = l
		}
	}
	contains(t, "startup line", line, "console=http://"+addr.String()+"/")
}

func TestConsoleURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8000": "http://127.0.0.1:8000/",
		"0.0.0.0:8000":   "http://localhost:8000/",
		"[::]:8000":      "http://localhost:8000/",
		"[::1]:9":        "http://[::1]:9/",
	} {
		a, err := net.ResolveTCPAddr("tcp", in)
		if err != nil {
			t.Fatal(err)
		}
		if got := servicekit.ConsoleURL(a); got != want {
			t.Errorf("servicekit.ConsoleURL(%s) = %s, want %s", in, got, want)
		}
	}
}
