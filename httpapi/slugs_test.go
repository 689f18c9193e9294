package httpapi

import (
	"os"
	"regexp"
	"strconv"
	"testing"
)

// TestReadmeListsEverySlug keeps README.md's table of problem types and
// the code's in step: a slug added here without a row there (or a row for
// a slug that no longer exists) fails.
func TestReadmeListsEverySlug(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := regexp.MustCompile("(?m)^\\| `([a-z-]+)` \\| (\\d{3}) \\|").FindAllSubmatch(readme, -1)
	listed := map[string]int{}
	for _, r := range rows {
		n, _ := strconv.Atoi(string(r[2]))
		listed[string(r[1])] = n
	}
	want := map[string]int{"invalid-ulid": 400}
	for status, slug := range slugs {
		want[slug] = status
	}
	for slug, status := range want {
		if listed[slug] != status {
			t.Errorf("README.md has no row | `%s` | %d |", slug, status)
		}
	}
	for slug := range listed {
		if _, ok := want[slug]; !ok {
			t.Errorf("README.md lists %q, which the code never sends", slug)
		}
	}
}
