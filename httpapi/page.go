package httpapi

// PageQuery is the optional pagination of list endpoints: with page (and
// size), the body is a Page object; without, a plain array.
type PageQuery struct {
	Page int `query:"page" minimum:"1" doc:"1-based page number; turns the response into a page object"`
	Size int `query:"size" minimum:"1" maximum:"1000" doc:"items per page (default 50)"`
}

// paged reports whether pagination was asked for, and the limit and offset.
func (q PageQuery) paged(defaultLimit int) (bool, int, int) {
	if q.Page == 0 && q.Size == 0 {
		return false, defaultLimit, 0
	}
	page, size := max(q.Page, 1), q.Size
	if size == 0 {
		size = 50
	}
	return true, size, (page - 1) * size
}

// Page is one page of a list.
type Page[T any] struct {
	Items []T `json:"items"`
	Total int `json:"total"`
	Page  int `json:"page"`
	Size  int `json:"size"`
	Pages int `json:"pages"`
}

func newPage[T any](items []T, total, limit, offset int) Page[T] {
	return Page[T]{Items: items, Total: total, Page: offset/limit + 1, Size: limit, Pages: (total + limit - 1) / limit}
}
