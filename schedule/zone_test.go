package schedule

import (
	"archive/zip"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite zones.txt from the Go toolchain's lib/time/zoneinfo.zip")

// TestZoneListMatchesToolchain holds zones.txt equal to the zones of the Go
// toolchain, the same data time/tzdata embeds, so suggestions name zones
// that exist.
func TestZoneListMatchesToolchain(t *testing.T) {
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	r, err := zip.OpenReader(filepath.Join(strings.TrimSpace(string(goroot)), "lib", "time", "zoneinfo.zip"))
	if err != nil {
		t.Fatalf("the toolchain's zone data: %v", err)
	}
	defer r.Close()
	var names []string
	for _, f := range r.File {
		names = append(names, f.Name)
	}
	slices.Sort(names)
	want := strings.Join(names, "\n") + "\n"
	if *update {
		if err := os.WriteFile("zones.txt", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if zoneNames != want {
		t.Fatal("zones.txt is not the toolchain's list of zones; rewrite it: go test ./schedule -run TestZoneListMatchesToolchain -update")
	}
}

func TestEveryListedZoneLoads(t *testing.T) {
	for _, name := range strings.Fields(zoneNames) {
		if _, err := time.LoadLocation(name); err != nil {
			t.Errorf("zones.txt lists %s: %v", name, err)
		}
	}
}
