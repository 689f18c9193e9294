package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/servicekit/servicekit/artifact"
	"github.com/servicekit/servicekit/internal/ids"
)

// ArtifactInput is the body of POST /api/v1/artifacts.
type ArtifactInput struct {
	// Data is kept as raw JSON so that it is stored exactly as sent (big
	// integers keep their digits, objects their key order) instead of going
	// through map[string]any and float64.
	Data     json.RawMessage `json:"data" doc:"any JSON value (required; null is a value)"`
	ParentID *string         `json:"parent_id,omitempty" nullable:"true" doc:"ULID of the parent artifact; omitted or null for a root"`
}

// ArtifactUpdate is the body of PUT /api/v1/artifacts/{id}: the data
// replaces the old data whole. Parent and level cannot change, because
// moving an artifact would change the level of its whole subtree.
type ArtifactUpdate struct {
	Data json.RawMessage `json:"data" doc:"the new data, any JSON value"`
}

// ArtifactPath is the {id} of artifact operations. It is exported because
// huma skips embedded fields of unexported types, which would leave the id
// empty in inputs that embed it.
type ArtifactPath struct {
	ID string `path:"id" doc:"artifact ULID"`
}

type artifactOut struct {
	Body *artifact.Artifact
}

type artifactListOut struct {
	Total int `header:"X-Total-Count" doc:"how many artifacts there are in all, so a client can tell a truncated plain list"`
	Body  any `doc:"an array of ArtifactOut, or with page/size a page object {items,total,page,size,pages}"`
}

// artifactListCap bounds GET /api/v1/artifacts without page/size. Artifacts
// accumulate (one per finished job), so an unbounded plain list would grow
// without end; past the cap a client pages, and X-Total-Count tells it to.
const artifactListCap = 1000

var artifactsTag = []string{"Artifacts"}

func (s *Server) registerArtifacts() {
	m := s.d.Artifacts
	huma.Register(s.api, huma.Operation{
		OperationID: "create-artifact", Method: http.MethodPost, Path: "/api/v1/artifacts", Tags: artifactsTag,
		Summary:       "Create an artifact",
		Description:   "Its level is 0 for a root, the parent's level + 1 otherwise. An unknown parent_id is a 422.",
		DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *struct{ Body ArtifactInput }) (*struct {
		Status   int
		Location string `header:"Location"`
		Body     *artifact.Artifact
	}, error) {
		if p := in.Body.ParentID; p != nil {
			if !ids.Valid(*p) {
				msg := "parent_id " + strconv.Quote(*p) + " is not a valid ULID"
				return nil, validationFailed(msg, FieldDetail{Location: "body.parent_id", Message: msg})
			}
			*p = strings.ToUpper(*p) // ids are stored in upper case; Crockford base32 ignores case
		}
		a, err := m.Save(ctx, in.Body.Data, in.Body.ParentID)
		if err != nil {
			return nil, s.toProblem(ctx, err)
		}
		return &struct {
			Status   int
			Location string `header:"Location"`
			Body     *artifact.Artifact
		}{Status: http.StatusCreated, Location: "/api/v1/artifacts/" + a.ID, Body: a}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "list-artifacts", Method: http.MethodGet, Path: "/api/v1/artifacts", Tags: artifactsTag,
		Summary: "List artifacts, oldest first",
		Description: "Without page/size at most the oldest " + strconv.Itoa(artifactListCap) +
			" (X-Total-Count has the full count); with them the page object.",
	}, func(ctx context.Context, in *struct{ PageQuery }) (*artifactListOut, error) {
		paged, limit, offset := in.paged(artifactListCap)
		items, total, err := m.List(ctx, limit, offset)
		if err != nil {
			return nil, s.toProblem(ctx, err)
		}
		if paged {
			return &artifactListOut{Total: total, Body: newPage(items, total, limit, offset)}, nil
		}
		return &artifactListOut{Total: total, Body: items}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "get-artifact", Method: http.MethodGet, Path: "/api/v1/artifacts/{id}", Tags: artifactsTag,
		Summary: "Get an artifact",
	}, func(ctx context.Context, in *ArtifactPath) (*artifactOut, error) {
		if err := checkID("artifact id", in.ID); err != nil {
			return nil, err
		}
		a, err := m.Get(ctx, in.ID)
		if err != nil {
			return nil, s.toProblem(ctx, err)
		}
		return &artifactOut{Body: a}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "update-artifact", Method: http.MethodPut, Path: "/api/v1/artifacts/{id}", Tags: artifactsTag,
		Summary: "Replace an artifact's data", Description: "Bumps updated_at; parent and level stay.",
	}, func(ctx context.Context, in *struct {
		ArtifactPath
		Body ArtifactUpdate
	}) (*artifactOut, error) {
		if err := checkID("artifact id", in.ID); err != nil {
			return nil, err
		}
		a, err := m.Update(ctx, in.ID, in.Body.Data)
		if err != nil {
			return nil, s.toProblem(ctx, err)
		}
		return &artifactOut{Body: a}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "delete-artifact", Method: http.MethodDelete, Path: "/api/v1/artifacts/{id}", Tags: artifactsTag,
		Summary:       "Delete an artifact",
		Description:   "409 when it has children, unless cascade=true, which deletes the whole subtree.",
		DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *struct {
		ArtifactPath
		// A string, not a bool, so the 400 for a bad value can list the
		// values that work.
		Cascade string `query:"cascade" doc:"true to delete the artifact with all its descendants"`
	}) (*struct{}, error) {
		if err := checkID("artifact id", in.ID); err != nil {
			return nil, err
		}
		cascade := false
		if in.Cascade != "" {
			var err error
			if cascade, err = strconv.ParseBool(in.Cascade); err != nil {
				return nil, problemf(400, "query cascade=%q: want true or false", in.Cascade)
			}
		}
		return nil, s.toProblem(ctx, m.Delete(ctx, in.ID, cascade))
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "artifact-tree", Method: http.MethodGet, Path: "/api/v1/artifacts/{id}/$tree", Tags: artifactsTag,
		Summary:     "An artifact with its whole subtree",
		Description: "children are nested, oldest first; a leaf has children []. Each node has its level_label and hierarchy.",
	}, func(ctx context.Context, in *ArtifactPath) (*struct{ Body *artifact.TreeNode }, error) {
		if err := checkID("artifact id", in.ID); err != nil {
			return nil, err
		}
		t, err := m.Tree(ctx, in.ID)
		if err != nil {
			return nil, s.toProblem(ctx, err)
		}
		return &struct{ Body *artifact.TreeNode }{Body: t}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "artifact-expand", Method: http.MethodGet, Path: "/api/v1/artifacts/{id}/$expand", Tags: artifactsTag,
		Summary:     "An artifact with its level label and hierarchy, without children",
		Description: "children is always null here (not loaded); use $tree for the subtree.",
	}, func(ctx context.Context, in *ArtifactPath) (*struct{ Body *artifact.Expanded }, error) {
		if err := checkID("artifact id", in.ID); err != nil {
			return nil, err
		}
		e, err := m.Expand(ctx, in.ID)
		if err != nil {
			return nil, s.toProblem(ctx, err)
		}
		return &struct{ Body *artifact.Expanded }{Body: e}, nil
	})
}
