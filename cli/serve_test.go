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
