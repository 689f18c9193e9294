package artifact_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/servicekit/servicekit/artifact"
	"github.com/servicekit/servicekit/internal/dbtest"
	"github.com/servicekit/servicekit/internal/ids"
	"github.com/servicekit/servicekit/store"
)

// eachDB runs test once per database (see dbtest.Each), so both dialects
// are held to the same tests.
func eachDB(t *testing.T, test func(t *testing.T, m *artifact.Manager)) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) { test(t, artifact.NewManager(db)) })
}

func save(t *testing.T, m *artifact.Manager, data any, parent *artifact.Artifact) *artifact.Artifact {
	t.Helper()
	var pid *string
	if parent != nil {
		pid = &parent.ID
	}
	a, err := m.Save(context.Background(), data, pid)
	if err != nil {
		t.Fatalf("save: %v", err)
	}
	return a
}

func TestArtifactSaveComputesLevel(t *testing.T) {
	eachDB(t, func(t *testing.T, m *artifact.Manager) {
		root := save(t, m, map[string]int{"n": 0}, nil)
		child := save(t, m, map[string]int{"n": 1}, root)
		grand := save(t, m, map[string]int{"n": 2}, child)
		for want, a := range []*artifact.Artifact{root, child, grand} {
			got, err := m.Get(context.Background(), a.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Level != want {
				t.Errorf("level of %d: got %d", want, got.Level)
			}
		}
		unknown := ids.New()
		if _, err := m.Save(context.Background(), 1, &unknown); !errors.Is(err, artifact.ErrParentUnknown) {
			t.Errorf("unknown parent: got %v, want ErrParentUnknown", err)
		}
	})
}

func TestArtifactListOldestFirst(t *testing.T) {
	eachDB(t, func(t *testing.T, m *artifact.Manager) {
		ctx := context.Background()
		var want []string
		for i := range 5 {
			want = append(want, save(t, m, i, nil).ID)
		}
		all, total, err := m.List(ctx, 0, 0)
		if err != nil || total != 5 || len(all) != 5 {
			t.Fatalf("list all: %d items, total %d, err %v", len(all), total, err)
		}
		for i, a := range all {
			if a.ID != want[i] {
				t.Errorf("item %d: got %s, want %s", i, a.ID, want[i])
			}
		}
		page, total, err := m.List(ctx, 2, 2)
		if err != nil || total != 5 || len(page) != 2 || page[0].ID != want[2] || page[1].ID != want[3] {
			t.Fatalf("page: %+v total %d err %v", page, total, err)
		}
		empty, _, err := m.List(ctx, 10, 100)
		if err != nil || empty == nil || len(empty) != 0 {
			t.Fatalf("past the end: %v, %v (want an empty, non-nil slice)", empty, err)
		}
	})
}

func TestArtifactUpdate(t *testing.T) {
	eachDB(t, func(t *testing.T, m *artifact.Manager) {
		ctx := context.Background()
		a := save(t, m, map[string]int{"v": 1}, nil)
		time.Sleep(2 * time.Millisecond) // updated_at has millisecond resolution
		got, err := m.Update(ctx, a.ID, json.RawMessage(`{ "v" : 2 }`))
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Data) != `{"v":2}` || !got.UpdatedAt.After(a.UpdatedAt) || !got.CreatedAt.Equal(a.CreatedAt) {
			t.Errorf("updated: data %s, created %v→%v, updated %v→%v", got.Data, a.CreatedAt, got.CreatedAt, a.UpdatedAt, got.UpdatedAt)
		}
		if _, err := m.Update(ctx, ids.New(), json.RawMessage(`1`)); !errors.Is(err, artifact.ErrNotFound) {
			t.Errorf("unknown id: got %v", err)
		}
		if _, err := m.Update(ctx, a.ID, json.RawMessage(`{`)); err == nil {
			t.Error("invalid JSON accepted")
		}
	})
}

func TestArtifactDelete(t *testing.T) {
	eachDB(t, func(t *testing.T, m *artifact.Manager) {
		ctx := context.Background()
		root := save(t, m, "root", nil)
		child := save(t, m, "child", root)
		grand := save(t, m, "grand", child)
		other := save(t, m, "other", nil)

		if err := m.Delete(ctx, root.ID, false); !errors.Is(err, artifact.ErrHasChildren) {
			t.Fatalf("delete with children: got %v, want ErrHasChildren", err)
		}
		if _, err := m.Get(ctx, root.ID); err != nil {
			t.Fatalf("refused delete removed the artifact: %v", err)
		}
		if err := m.Delete(ctx, grand.ID, false); err != nil {
			t.Fatalf("delete leaf: %v", err)
		}
		save(t, m, "grand2", child)
		// The cascade relies on the schema's ON DELETE CASCADE, which SQLite
		// honors only with foreign_keys on: this proves the store turns it on.
		if err := m.Delete(ctx, root.ID, true); err != nil {
			t.Fatalf("cascade: %v", err)
		}
		all, total, err := m.List(ctx, 0, 0)
		if err != nil || total != 1 || len(all) != 1 || all[0].ID != other.ID {
			t.Fatalf("after cascade: %d left (%v), want only the unrelated root", total, err)
		}
		for _, cascade := range []bool{false, true} {
			if err := m.Delete(ctx, root.ID, cascade); !errors.Is(err, artifact.ErrNotFound) {
				t.Errorf("delete gone artifact (cascade=%v): got %v", cascade, err)
			}
		}
	})
}

func TestArtifactTree(t *testing.T) {
	eachDB(t, func(t *testing.T, m *artifact.Manager) {
		m.Hierarchy = artifact.Hierarchy{Name: "ml", LevelLabels: []string{"experiment", "run"}}
		ctx := context.Background()
		root := save(t, m, "root", nil)
		c1 := save(t, m, "c1", root)
		c2 := save(t, m, "c2", root)
		g := save(t, m, "g", c1)
		save(t, m, "unrelated", nil)

		tree, err := m.Tree(ctx, root.ID)
		if err != nil {
			t.Fatal(err)
		}
		if tree.ID != root.ID || len(tree.Children) != 2 || tree.Children[0].ID != c1.ID || tree.Children[1].ID != c2.ID {
			t.Fatalf("root's children: %+v", tree.Children)
		}
		if gc := tree.Children[0].Children; len(gc) != 1 || gc[0].ID != g.ID || gc[0].Children == nil || len(gc[0].Children) != 0 {
			t.Fatalf("c1's children: %+v", gc)
		}
		if c := tree.Children[1].Children; c == nil || len(c) != 0 {
			t.Errorf("leaf children: got %v, want an empty non-nil slice", c)
		}
		if tree.LevelLabel != "experiment" || tree.Children[0].LevelLabel != "run" || tree.Children[0].Children[0].LevelLabel != "level_2" || tree.Hierarchy != "ml" {
			t.Errorf("labels: %q %q %q in %q", tree.LevelLabel, tree.Children[0].LevelLabel, tree.Children[0].Children[0].LevelLabel, tree.Hierarchy)
		}

		sub, err := m.Tree(ctx, c1.ID)
		if err != nil || sub.ID != c1.ID || len(sub.Children) != 1 || sub.Level != 1 {
			t.Fatalf("subtree of c1: %+v, %v", sub, err)
		}
		if _, err := m.Tree(ctx, ids.New()); !errors.Is(err, artifact.ErrNotFound) {
			t.Errorf("unknown id: got %v", err)
		}
	})
}

func TestArtifactExpand(t *testing.T) {
	eachDB(t, func(t *testing.T, m *artifact.Manager) {
		ctx := context.Background()
		root := save(t, m, "root", nil)
		child := save(t, m, "child", root)

		e, err := m.Expand(ctx, child.ID)
		if err != nil {
			t.Fatal(err)
		}
		if e.LevelLabel != "level_1" || e.Hierarchy != "default" || e.Children != nil || *e.ParentID != root.ID {
			t.Errorf("expand: %+v", e)
		}
		b, _ := json.Marshal(e)
		var out map[string]any
		json.Unmarshal(b, &out)
		if v, ok := out["children"]; !ok || v != nil {
			t.Errorf("children in JSON: %v (present %v), want null", v, ok)
		}
		if _, err := m.Expand(ctx, ids.New()); !errors.Is(err, artifact.ErrNotFound) {
			t.Errorf("unknown id: got %v", err)
		}
	})
}

func TestHierarchyLabel(t *testing.T) {
	h := artifact.Hierarchy{LevelLabels: []string{"a", "", "c"}}
	for level, want := range map[int]string{0: "a", 1: "level_1", 2: "c", 3: "level_3", -1: "level_-1"} {
		if got := h.Label(level); got != want {
			t.Errorf("Label(%d) = %q, want %q", level, got, want)
		}
	}
	if h.NameOrDefault() != "default" {
		t.Errorf("unset name: %q", h.NameOrDefault())
	}
}
