package httpapi

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the Prometheus metrics of one service, on a registry of its
// own so that two services in one process (tests, embedding) don't clash:
// the HTTP metrics here, the job metrics (job.Metrics) registered beside
// them, and the Go and process collectors.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics makes the registry with the HTTP, Go and process metrics.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "servicekit_http_requests_total", Help: "HTTP requests by route template, method and status code.",
	}, []string{"route", "method", "status"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "servicekit_http_request_duration_seconds", Help: "HTTP request duration by route template, method and status code.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "method", "status"})
	m.reg.MustRegister(m.requests, m.duration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the registry, for the job metrics and a program's own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

func (m *Metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// statusRecorder remembers the status a handler wrote. Unwrap lets
// http.ResponseController reach the real writer (Flush for SSE).
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observe counts and times each request by its route template (the mux
// pattern, so ids don't explode the label space) and logs it.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		_, route := s.mux.Handler(r)
		if route == "" {
			route = "unmatched"
		}
		code := strconv.Itoa(rec.status)
		d := time.Since(start)
		if s.d.Metrics != nil {
			s.d.Metrics.requests.WithLabelValues(route, r.Method, code).Inc()
			s.d.Metrics.duration.WithLabelValues(route, r.Method, code).Observe(d.Seconds())
		}
		// Successes log at debug (a busy server answers thousands a second;
		// --log-level debug shows them), client errors at info, server errors at warn.
		level := slog.LevelDebug
		switch {
		case rec.status >= 500:
			level = slog.LevelWarn
		case rec.status >= 400:
			level = slog.LevelInfo
		}
		s.d.Logger.Log(r.Context(), level, "http request", "method", r.Method, "route", route, "path", r.URL.Path,
			"status", rec.status, "duration_ms", float64(d.Microseconds())/1000, "request_id", RequestID(r.Context()))
	})
}
