package artifact

import (
	"context"
	"strconv"
)

// Hierarchy gives the levels of an artifact tree names, so a client can show
// "experiment / run / fold" instead of bare depths. The zero value is the
// hierarchy "default" whose levels are called level_0, level_1, ….
type Hierarchy struct {
	Name string `json:"name"`
	// LevelLabels[n] names level n; levels past its end keep level_<n>.
	LevelLabels []string `json:"level_labels,omitempty"`
}

// DefaultHierarchyName is the hierarchy name used when none is set.
const DefaultHierarchyName = "default"

// NameOrDefault returns the hierarchy's name, or "default" when it is unset.
func (h Hierarchy) NameOrDefault() string {
	if h.Name == "" {
		return DefaultHierarchyName
	}
	return h.Name
}

// Label names a level: its label when one is defined, else "level_<n>".
func (h Hierarchy) Label(level int) string {
	if level >= 0 && level < len(h.LevelLabels) && h.LevelLabels[level] != "" {
		return h.LevelLabels[level]
	}
	return "level_" + strconv.Itoa(level)
}

// Labels describe where an artifact sits in the manager's hierarchy.
type Labels struct {
	LevelLabel string `json:"level_label" doc:"the name of the artifact's level in the hierarchy, level_<n> when it has none"`
	Hierarchy  string `json:"hierarchy" doc:"the name of the hierarchy"`
}

// TreeNode is an artifact with its descendants nested under it ($tree).
type TreeNode struct {
	Artifact
	Labels
	// Children is never nil, so a leaf encodes as [] and a client can tell
	// "has no children" from "children not loaded" ($expand's null).
	Children []*TreeNode `json:"children" doc:"the artifact's children, oldest first; [] for a leaf"`
}

// Expanded is one artifact with its labels but without its children
// ($expand): children is always null, meaning "not loaded", so the same
// client code can read it and a TreeNode.
type Expanded struct {
	Artifact
	Labels
	Children []*TreeNode `json:"children" doc:"always null: $expand does not load children (see $tree)"`
}

func (m *Manager) labels(level int) Labels {
	return Labels{LevelLabel: m.Hierarchy.Label(level), Hierarchy: m.Hierarchy.NameOrDefault()}
}

// Tree returns the artifact id with its whole subtree, or ErrNotFound. The
// subtree is read with one recursive query and assembled here, so a deep or
// wide tree costs one round trip, not one per node.
func (m *Manager) Tree(ctx context.Context, id string) (*TreeNode, error) {
	rows, err := m.db.Query(ctx, m.q.Subtree, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var root *TreeNode
	nodes := map[string]*TreeNode{}
	for rows.Next() {
		a, err := scan(rows)
		if err != nil {
			return nil, err
		}
		n := &TreeNode{Artifact: *a, Labels: m.labels(a.Level), Children: []*TreeNode{}}
		nodes[a.ID] = n
		if root == nil {
			// Rows come ordered by level, so the first one is id itself.
			root = n
			continue
		}
		// Parents come before their children, so the parent is already known.
		if p := nodes[*a.ParentID]; p != nil {
			p.Children = append(p.Children, n)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if root == nil {
		return nil, ErrNotFound
	}
	return root, nil
}

// Expand returns the artifact id with its level label and hierarchy name,
// without loading its children, or ErrNotFound.
func (m *Manager) Expand(ctx context.Context, id string) (*Expanded, error) {
	a, err := m.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return &Expanded{Artifact: *a, Labels: m.labels(a.Level)}, nil
}
