package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servicekit/servicekit/artifact"
	"github.com/servicekit/servicekit/httpapi"
	"github.com/servicekit/servicekit/internal/ids"
	"github.com/servicekit/servicekit/store"
)

// artifactAPI serves only the artifact endpoints over a fresh SQLite file.
func artifactAPI(t *testing.T, h artifact.Hierarchy) http.Handler {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite:///"+filepath.Join(t.TempDir(), "api.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	m := artifact.NewManager(db)
	m.Hierarchy = h
	return httpapi.New(httpapi.Deps{Info: httpapi.Info{DisplayName: "test", Version: "0"}, DB: db, Artifacts: m})
}

type artifactResp struct {
	status int
	header http.Header
	body   []byte
}

func (r artifactResp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func artifactCall(t *testing.T, h http.Handler, method, path, body string) artifactResp {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return artifactResp{status: w.Code, header: w.Header(), body: w.Body.Bytes()}
}

// artifactMust calls and fails the test unless the status is want.
func artifactMust(t *testing.T, h http.Handler, want int, method, path, body string) artifactResp {
	t.Helper()
	r := artifactCall(t, h, method, path, body)
	if r.status != want {
		t.Fatalf("%s %s: status %d, want %d; body %s", method, path, r.status, want, r.body)
	}
	return r
}

type artifactJSON struct {
	ID         string          `json:"id"`
	Data       json.RawMessage `json:"data"`
	ParentID   *string         `json:"parent_id"`
	Level      int             `json:"level"`
	CreatedAt  string          `json:"created_at"`
	UpdatedAt  string          `json:"updated_at"`
	LevelLabel string          `json:"level_label"`
	Hierarchy  string          `json:"hierarchy"`
	Children   []artifactJSON  `json:"children"`
}

func createArtifact(t *testing.T, h http.Handler, body string) artifactJSON {
	t.Helper()
	r := artifactMust(t, h, http.StatusCreated, "POST", "/api/v1/artifacts", body)
	var a artifactJSON
	r.decode(t, &a)
	if loc := r.header.Get("Location"); loc != "/api/v1/artifacts/"+a.ID {
		t.Errorf("Location %q for id %s", loc, a.ID)
	}
	return a
}

func TestArtifactAPILifecycle(t *testing.T) {
	h := artifactAPI(t, artifact.Hierarchy{})
	root := createArtifact(t, h, `{"data": {"name": "root", "big": 12345678901234567890}}`)
	child := createArtifact(t, h, `{"data": [1, 2], "parent_id": "`+root.ID+`"}`)
	grand := createArtifact(t, h, `{"data": "leaf", "parent_id": "`+child.ID+`"}`)
	sibling := createArtifact(t, h, `{"data": null, "parent_id": "`+root.ID+`"}`)
	other := createArtifact(t, h, `{"data": 1, "parent_id": null}`)

	for want, a := range []artifactJSON{root, child, grand} {
		if a.Level != want {
			t.Errorf("artifact %s: level %d, want %d", a.Data, a.Level, want)
		}
	}
	if root.ParentID != nil || *grand.ParentID != child.ID || other.Level != 0 {
		t.Errorf("parents: root %v, grand %v, other level %d", root.ParentID, grand.ParentID, other.Level)
	}
	var got artifactJSON
	artifactMust(t, h, 200, "GET", "/api/v1/artifacts/"+root.ID, "").decode(t, &got)
	// Data is stored as sent: a big integer keeps all its digits.
	if string(got.Data) != `{"name":"root","big":12345678901234567890}` || !strings.HasSuffix(got.CreatedAt, "Z") {
		t.Errorf("get root: %+v", got)
	}

	t.Run("tree", func(t *testing.T) {
		r := artifactMust(t, h, 200, "GET", "/api/v1/artifacts/"+root.ID+"/$tree", "")
		var tree artifactJSON
		r.decode(t, &tree)
		if len(tree.Children) != 2 || tree.Children[0].ID != child.ID || tree.Children[1].ID != sibling.ID {
			t.Fatalf("root's children: %+v", tree.Children)
		}
		if gc := tree.Children[0].Children; len(gc) != 1 || gc[0].ID != grand.ID || gc[0].Level != 2 {
			t.Fatalf("child's children: %+v", gc)
		}
		if tree.LevelLabel != "level_0" || tree.Hierarchy != "default" {
			t.Errorf("root labels: %q %q", tree.LevelLabel, tree.Hierarchy)
		}
		// A leaf has "children": [], not null and not missing.
		var raw struct {
			Children []struct {
				Children []struct {
					Children json.RawMessage `json:"children"`
				} `json:"children"`
			} `json:"children"`
		}
		r.decode(t, &raw)
		if leaf := string(raw.Children[0].Children[0].Children); leaf != "[]" {
			t.Errorf("leaf children: %q, want []", leaf)
		}
	})

	t.Run("expand", func(t *testing.T) {
		r := artifactMust(t, h, 200, "GET", "/api/v1/artifacts/"+child.ID+"/$expand", "")
		var e artifactJSON
		r.decode(t, &e)
		var raw map[string]json.RawMessage
		r.decode(t, &raw)
		if e.ID != child.ID || e.Level != 1 || e.LevelLabel != "level_1" || e.Hierarchy != "default" || string(raw["children"]) != "null" {
			t.Errorf("expand: %s", r.body)
		}
	})

	t.Run("put", func(t *testing.T) {
		var u artifactJSON
		artifactMust(t, h, 200, "PUT", "/api/v1/artifacts/"+child.ID, `{"data": {"replaced": true}}`).decode(t, &u)
		if string(u.Data) != `{"replaced":true}` || u.Level != 1 || *u.ParentID != root.ID || u.CreatedAt != child.CreatedAt || laterThan(child.UpdatedAt, u.UpdatedAt) {
			t.Errorf("put: %+v (was %+v)", u, child)
		}
		artifactMust(t, h, 200, "GET", "/api/v1/artifacts/"+child.ID, "").decode(t, &u)
		if string(u.Data) != `{"replaced":true}` {
			t.Errorf("put not stored: %s", u.Data)
		}
	})

	t.Run("list", func(t *testing.T) {
		r := artifactMust(t, h, 200, "GET", "/api/v1/artifacts", "")
		var all []artifactJSON
		r.decode(t, &all)
		want := []string{root.ID, child.ID, grand.ID, sibling.ID, other.ID}
		if len(all) != len(want) {
			t.Fatalf("list: %d items, want %d", len(all), len(want))
		}
		for i, a := range all {
			if a.ID != want[i] {
				t.Errorf("list[%d] = %s, want %s (oldest first)", i, a.ID, want[i])
			}
		}
		if r.header.Get("X-Total-Count") != "5" {
			t.Errorf("X-Total-Count %q", r.header.Get("X-Total-Count"))
		}
		var page struct {
			Items                    []artifactJSON `json:"items"`
			Total, Page, Size, Pages int
		}
		artifactMust(t, h, 200, "GET", "/api/v1/artifacts?page=2&size=2", "").decode(t, &page)
		if page.Total != 5 || page.Page != 2 || page.Size != 2 || page.Pages != 3 || len(page.Items) != 2 ||
			page.Items[0].ID != grand.ID || page.Items[1].ID != sibling.ID {
			t.Errorf("page: %+v", page)
		}
	})

	t.Run("delete", func(t *testing.T) {
		r := artifactMust(t, h, 409, "DELETE", "/api/v1/artifacts/"+root.ID, "")
		checkArtifactProblem(t, r, 409, "conflict")
		artifactMust(t, h, 409, "DELETE", "/api/v1/artifacts/"+root.ID+"?cascade=false", "")
		artifactMust(t, h, 204, "DELETE", "/api/v1/artifacts/"+grand.ID, "")
		artifactMust(t, h, 204, "DELETE", "/api/v1/artifacts/"+root.ID+"?cascade=true", "")
		for _, id := range []string{root.ID, child.ID, sibling.ID, grand.ID} {
			artifactMust(t, h, 404, "GET", "/api/v1/artifacts/"+id, "")
		}
		artifactMust(t, h, 200, "GET", "/api/v1/artifacts/"+other.ID, "")
		artifactMust(t, h, 404, "DELETE", "/api/v1/artifacts/"+root.ID+"?cascade=true", "")
	})
}

func TestArtifactAPIHierarchyLabels(t *testing.T) {
	h := artifactAPI(t, artifact.Hierarchy{Name: "ml", LevelLabels: []string{"experiment", "run"}})
	root := createArtifact(t, h, `{"data": {}}`)
	run := createArtifact(t, h, `{"data": {}, "parent_id": "`+root.ID+`"}`)
	fold := createArtifact(t, h, `{"data": {}, "parent_id": "`+run.ID+`"}`)
	for id, want := range map[string]string{root.ID: "experiment", run.ID: "run", fold.ID: "level_2"} {
		var e artifactJSON
		artifactMust(t, h, 200, "GET", "/api/v1/artifacts/"+id+"/$expand", "").decode(t, &e)
		if e.LevelLabel != want || e.Hierarchy != "ml" {
			t.Errorf("level %d: label %q in %q, want %q in ml", e.Level, e.LevelLabel, e.Hierarchy, want)
		}
	}
}

// checkArtifactProblem asserts r is an RFC 9457 problem with this status and slug.
func checkArtifactProblem(t *testing.T, r artifactResp, status int, slug string) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var p struct {
		Type     string `json:"type"`
		Status   int    `json:"status"`
		Detail   string `json:"detail"`
		Instance string `json:"instance"`
	}
	r.decode(t, &p)
	if p.Type != "urn:servicekit:error:"+slug || p.Status != status || p.Detail == "" {
		t.Errorf("problem: %s, want status %d type urn:servicekit:error:%s", r.body, status, slug)
	}
}

func TestArtifactAPIErrors(t *testing.T) {
	h := artifactAPI(t, artifact.Hierarchy{})
	parent := createArtifact(t, h, `{"data": 1}`)
	createArtifact(t, h, `{"data": 2, "parent_id": "`+parent.ID+`"}`)
	unknown := ids.New()
	const base = "/api/v1/artifacts"
	p := base + "/"

	cases := []struct {
		name, method, path, body string
		status                   int
		slug                     string
	}{
		{"get invalid ulid", "GET", p + "not-a-ulid", "", 400, "invalid-ulid"},
		{"put invalid ulid", "PUT", p + "not-a-ulid", `{"data": 1}`, 400, "invalid-ulid"},
		{"delete invalid ulid", "DELETE", p + "not-a-ulid", "", 400, "invalid-ulid"},
		{"tree invalid ulid", "GET", p + "not-a-ulid/$tree", "", 400, "invalid-ulid"},
		{"expand invalid ulid", "GET", p + "not-a-ulid/$expand", "", 400, "invalid-ulid"},
		{"get unknown", "GET", p + unknown, "", 404, "not-found"},
		{"put unknown", "PUT", p + unknown, `{"data": 1}`, 404, "not-found"},
		{"delete unknown", "DELETE", p + unknown, "", 404, "not-found"},
		{"tree unknown", "GET", p + unknown + "/$tree", "", 404, "not-found"},
		{"expand unknown", "GET", p + unknown + "/$expand", "", 404, "not-found"},
		{"unknown parent", "POST", base, `{"data": 1, "parent_id": "` + unknown + `"}`, 422, "validation-failed"},
		{"parent not a ulid", "POST", base, `{"data": 1, "parent_id": "nope"}`, 422, "validation-failed"},
		{"unknown field", "POST", base, `{"data": 1, "colour": "red"}`, 422, "validation-failed"},
		{"missing data", "POST", base, `{"parent_id": null}`, 422, "validation-failed"},
		{"put unknown field", "PUT", p + parent.ID, `{"data": 1, "parent_id": null}`, 422, "validation-failed"},
		{"put missing data", "PUT", p + parent.ID, `{}`, 422, "validation-failed"},
		{"malformed json", "POST", base, `{"data": `, 400, "bad-request"},
		{"put malformed json", "PUT", p + parent.ID, `{"data" 1}`, 400, "bad-request"},
		{"bad cascade", "DELETE", p + parent.ID + "?cascade=maybe", "", 400, "bad-request"},
		{"has children", "DELETE", p + parent.ID, "", 409, "conflict"},
		{"unknown sub-resource", "GET", p + parent.ID + "/$nope", "", 404, "not-found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := artifactMust(t, h, c.status, c.method, c.path, c.body)
			checkArtifactProblem(t, r, c.status, c.slug)
		})
	}
	// Nothing above may have changed the data.
	var all []artifactJSON
	artifactMust(t, h, 200, "GET", base, "").decode(t, &all)
	if len(all) != 2 || string(all[0].Data) != "1" {
		t.Errorf("after the failed requests: %+v", all)
	}
}

func TestArtifactAPIOpenAPI(t *testing.T) {
	h := artifactAPI(t, artifact.Hierarchy{})
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string   `json:"operationId"`
			Summary     string   `json:"summary"`
			Tags        []string `json:"tags"`
		} `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	artifactMust(t, h, 200, "GET", "/openapi.json", "").decode(t, &doc)
	want := map[string][]string{
		"/api/v1/artifacts":              {"get", "post"},
		"/api/v1/artifacts/{id}":         {"get", "put", "delete"},
		"/api/v1/artifacts/{id}/$tree":   {"get"},
		"/api/v1/artifacts/{id}/$expand": {"get"},
	}
	for path, methods := range want {
		for _, m := range methods {
			op, ok := doc.Paths[path][m]
			if !ok || op.OperationID == "" || op.Summary == "" || len(op.Tags) != 1 || op.Tags[0] != "Artifacts" {
				t.Errorf("%s %s: %+v (present %v)", m, path, op, ok)
			}
		}
	}
	if _, ok := doc.Components.Schemas["TreeNode"]; !ok {
		t.Errorf("no TreeNode schema among %d", len(doc.Components.Schemas))
	}
}

// laterThan compares two RFC 3339 times as times: as strings "…34.751Z"
// sorts before "…34.75Z", since the encoding drops trailing zeros.
func laterThan(a, b string) bool {
	ta, errA := time.Parse(time.RFC3339Nano, a)
	tb, errB := time.Parse(time.RFC3339Nano, b)
	return errA != nil || errB != nil || ta.After(tb)
}
