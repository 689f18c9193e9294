package clustertest

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestSimultaneousStartOnEmptyDatabase starts three servers at the same
// moment on an empty schema: all must migrate it and come up healthy, and
// each must see the three of them as live nodes. The migrations used to
// race (one server exited with duplicate key … pg_type_typname_nsp_index),
// and not every time, so it is repeated on fresh schemas.
func TestSimultaneousStartOnEmptyDatabase(t *testing.T) {
	for round := range 3 {
		t.Run(fmt.Sprintf("round%d", round+1), func(t *testing.T) {
			url := postgres(t)
			binary(t) // built before the clock starts
			began := time.Now()
			nodes := []*node{launch(t, "A", url), launch(t, "B", url), launch(t, "C", url)}
			for _, n := range nodes {
				n.waitHealthy(30 * time.Second)
			}
			t.Logf("three nodes migrated an empty schema and were healthy after %s", time.Since(began).Round(time.Millisecond))
			want := []string{nodes[0].id, nodes[1].id, nodes[2].id}
			slices.Sort(want)
			for _, n := range nodes {
				var got []string
				ok := eventually(5*time.Second, func() bool {
					got = got[:0]
					for _, l := range n.system().Nodes {
						got = append(got, l.ID)
					}
					slices.Sort(got)
					return slices.Equal(got, want)
				})
				if !ok {
					t.Errorf("node %s lists live nodes %v, want %v", n.name, got, want)
				}
			}
		})
	}
}
