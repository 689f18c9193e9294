package servicekit_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/servicekit/servicekit"
)

// TestWritesRefusedWhenDatabaseFileGoes: with the SQLite file deleted or
// replaced, /health said 503, yet $execute answered 202 and task create 201,
// and after a restart none of them existed. Now every write refuses with 503
// unavailable (and Retry-After) as soon as the file is not the one opened.
func TestWritesRefusedWhenDatabaseFileGoes(t *testing.T) {
	for name, breakIt := range map[string]func(path string){
		"deleted": func(path string) { os.Remove(path) },
		"replaced": func(path string) {
			os.WriteFile(path+".new", []byte("another file"), 0o600)
			os.Rename(path+".new", path)
		},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "t.db")
			e := newEnvOn(t, "sqlite:///"+path)
			task := e.createTask(map[string]any{"command": "greet_user"})
			e.waitJob(e.execute(task["id"].(string), nil))
			breakIt(path)
			for range 5 {
				r := e.do("POST", "/api/v1/tasks/"+task["id"].(string)+"/$execute", nil)
				if r.status != 503 || r.json()["type"] != "urn:servicekit:error:unavailable" || r.header.Get("Retry-After") == "" {
					t.Fatalf("$execute on a %s database file: %d %s", name, r.status, r.body)
				}
				r = e.do("POST", "/api/v1/tasks", map[string]any{"command": "echo hi"})
				if r.status != 503 {
					t.Fatalf("task create on a %s database file: %d %s", name, r.status, r.body)
				}
			}
			h := e.do("GET", "/health", nil)
			if h.status != 503 {
				t.Fatalf("/health: %d %s", h.status, h.body)
			}
		})
	}
}

// mountTmpfs mounts a small tmpfs at dir (root only), unmounted at the end.
func mountTmpfs(t *testing.T, dir string, size string) {
	t.Helper()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := "a full disk needs a small tmpfs, and mounting one failed (run as root): " + strings.TrimSpace(string(out))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
}

// TestDiskFullIs503AndRecovers fills the disk under the SQLite file (a
// 4 MiB tmpfs and a file that takes the rest): every write answers 503
// unavailable with Retry-After (it used to be 500 internal), /health is
// degraded while writes fail, nothing is acknowledged that is not stored,
// and once space is freed the service works again and no job stays running.
func TestDiskFullIs503AndRecovers(t *testing.T) {
	dir := t.TempDir()
	mountTmpfs(t, dir, "4m")
	path := filepath.Join(dir, "t.db")
	svc, err := servicekit.New(servicekit.Info{}).WithDatabase("sqlite:///" + path).
		WithRegistry(testRegistry()).WithTasks().Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	e := serve(t, svc)
	task := e.createTask(map[string]any{"command": "greet_user"})
	e.waitJob(e.execute(task["id"].(string), nil))

	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	t.Log("disk full: a 4 MiB tmpfs and a filler file")

	accepted := []string{}
	refused := 0
	deadline := time.Now().Add(10 * time.Second)
	for refused < 20 && time.Now().Before(deadline) {
		r := e.do("POST", "/api/v1/tasks/"+task["id"].(string)+"/$execute", map[string]any{"params": map[string]any{"name": strings.Repeat("x", 4000)}})
		switch r.status {
		case 202:
			accepted = append(accepted, r.json()["job_id"].(string)) // written to the WAL before the disk filled
		case 503:
			if r.json()["type"] != "urn:servicekit:error:unavailable" || r.header.Get("Retry-After") == "" {
				t.Fatalf("disk full: %s %v", r.body, r.header)
			}
			refused++
		default:
			t.Fatalf("disk full: %d %s", r.status, r.body)
		}
	}
	if refused == 0 {
		t.Fatalf("the disk never filled up (%d accepted)", len(accepted))
	}
	h := e.do("GET", "/health", nil)
	if st := h.json()["status"]; st == "healthy" {
		t.Fatalf("/health healthy while writes fail: %s", h.body)
	}
	t.Logf("%d accepted before the disk filled, %d refused with 503; /health %v", len(accepted), refused, h.json()["status"])

	os.Remove(filler)
	var last string
	for i := range 50 {
		r := e.do("POST", "/api/v1/tasks/"+task["id"].(string)+"/$execute", nil)
		if r.status == 202 {
			last = r.json()["job_id"].(string)
			break
		}
		if i == 49 {
			t.Fatalf("after freeing space: %d %s", r.status, r.body)
		}
		time.Sleep(50 * time.Millisecond) // the batcher retries on its own; give it a moment between requests
	}
	for _, id := range append(accepted, last) {
		if j := e.waitJob(id); j["status"] != "completed" {
			t.Fatalf("job %s accepted around the full disk ended %v (%v)", id, j["status"], j["error"])
		}
	}
	if h := e.do("GET", "/health", nil); h.json()["status"] != "healthy" {
		t.Fatalf("/health after recovery: %s", h.body)
	}
}
