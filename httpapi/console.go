package httpapi

import "github.com/servicekit/servicekit/web"

// registerConsole mounts the web console (package web) on the mux: the page
// at exactly "/" and its static files under "/ui/"; and what the console
// links to and draws from: the API docs page (docs.go) and, when the
// server runs jobs, GET /api/v1/jobs/$summary (summary.go), which its
// overview charts.
//
// The patterns are "GET /{$}" rather than "GET /" on purpose: "/" would match
// every path, so unknown routes would reach the console instead of
// routeFallback and stop being 404 problem+json. With "/{$}" an unknown
// path still has no route, and a POST to the console still gets the
// fallback's 405 with Allow. Like /health and /docs, the console's files
// carry no data, so an auth layer should let them through without a key:
// the page itself asks for the key when the API answers 401.
func (s *Server) registerConsole() {
	h := web.Handler()
	s.mux.Handle("GET "+web.IndexPath+"{$}", h)
	s.mux.Handle("GET "+web.AssetPrefix, h)
	s.registerDocs()
	if s.d.Jobs != nil && s.d.DB != nil {
		s.registerSummary()
	}
}
