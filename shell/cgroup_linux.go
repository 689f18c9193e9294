package shell

// Per-job cgroups (cgroup v2): where to make them, and how to empty them.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupBaseName is the directory, below the server's own cgroup, that
// holds the job cgroups: one directory, so that they are easy to find and
// the server's own cgroup stays tidy.
const cgroupBaseName = "servicekit"

// findCgroupBase returns the directory job cgroups go in: a "servicekit"
// child of the server's own cgroup in the cgroup v2 hierarchy (the unified
// hierarchy of a hybrid system counts). Creating children of one's own
// cgroup is what cgroup v2 delegation grants; whether this process may do
// it is found out by trying (see probeCgroup).
func findCgroupBase() (string, error) {
	mountpoint, root, err := cgroup2Mount()
	if err != nil {
		return "", err
	}
	own, err := ownCgroup()
	if err != nil {
		return "", err
	}
	rel, ok := strings.CutPrefix(own, strings.TrimSuffix(root, "/"))
	if !ok || (rel != "" && !strings.HasPrefix(rel, "/")) {
		return "", fmt.Errorf("this process's cgroup %s is outside the cgroup2 mount at %s (root %s)", own, mountpoint, root)
	}
	return filepath.Join(mountpoint, rel, cgroupBaseName), nil
}

// cgroup2Mount finds the cgroup2 mount in /proc/self/mountinfo, preferring
// /sys/fs/cgroup, and returns its mount point and the cgroup it shows as
// its root.
func cgroup2Mount() (mountpoint, root string, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, s := range fields {
			if s == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+1 >= len(fields) || fields[sep+1] != "cgroup2" {
			continue
		}
		if mountpoint == "" || fields[4] == "/sys/fs/cgroup" {
			mountpoint, root = unescapeMount(fields[4]), unescapeMount(fields[3])
		}
	}
	if mountpoint == "" {
		return "", "", errors.New("no cgroup2 file system is mounted")
	}
	return mountpoint, root, nil
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ownCgroup is this process's cgroup v2 path ("0::/path" in /proc/self/cgroup).
func ownCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(string(b)) {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "0::"); ok {
			if strings.HasSuffix(p, " (deleted)") {
				return "", fmt.Errorf("this process's cgroup %s was removed", p)
			}
			return p, nil
		}
	}
	return "", errors.New("this process has no cgroup v2 membership")
}

// makeCgroup creates the cgroup dir (its parent must exist).
func makeCgroup(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("shell: create the job's cgroup: %w", err)
	}
	return nil
}

// cgroupProcs lists the processes in the cgroup dir and the cgroups below it.
func cgroupProcs(dir string) []int {
	var out []int
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(filepath.Join(path, "cgroup.procs"))
		for f := range strings.FieldsSeq(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				out = append(out, pid)
			}
		}
		return nil
	})
	return out
}

// populated reports whether a process is left in the cgroup dir or below
// it; a cgroup that is gone is not populated.
func populated(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return false
	}
	return bytes.Contains(b, []byte("populated 1"))
}

// emptyCgroup kills every process in the cgroup dir at once with
// cgroup.kill (no process can fork its way out of that, unlike a scan and
// kill) and waits until the cgroup is empty. It gives up at the deadline (a
// process stuck in the kernel). It returns how many processes the cgroup
// held, and whether it used cgroup.kill: a cgroup killed once must not take
// new processes by clone3 CLONE_INTO_CGROUP, which Linux (6.18 at least)
// then kills at birth, so such a cgroup is not reused.
func emptyCgroup(dir string, deadline time.Time) (n int, killed bool, err error) {
	if !populated(dir) {
		return 0, false, nil // the common case: the job left nothing
	}
	n = len(cgroupProcs(dir))
	err = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return n, false, fmt.Errorf("shell: cgroup.kill in %s: %w", dir, err)
	}
	for pause := 100 * time.Microsecond; populated(dir); pause = min(2*pause, 10*time.Millisecond) {
		if time.Now().After(deadline) {
			return n, true, fmt.Errorf("shell: the processes of cgroup %s did not die in time", dir)
		}
		// cgroup.events could be watched with inotify; the processes of a
		// killed cgroup die within microseconds, so a short poll is simpler.
		time.Sleep(pause)
	}
	return n, true, nil
}

// killCgroup empties the cgroup dir (see emptyCgroup) and removes it, with
// the cgroups a job may have made below it; a cgroup it cannot empty is
// left for KillStrays.
func killCgroup(dir string, deadline time.Time) (int, error) {
	n, _, err := emptyCgroup(dir, deadline)
	if err != nil {
		return n, err
	}
	return n, removeCgroup(dir)
}

// removeCgroup removes the empty cgroup dir and any empty cgroups below it.
func removeCgroup(dir string) error {
	err := syscall.Rmdir(dir)
	if err == nil || errors.Is(err, syscall.ENOENT) {
		return nil
	}
	// Busy: the job made cgroups of its own below it; those go first.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			removeCgroup(filepath.Join(dir, e.Name()))
		}
	}
	if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("shell: remove cgroup %s: %w", dir, err)
	}
	return nil
}
