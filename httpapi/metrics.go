package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/servicekit/servicekit/job"
)

// Metrics are the Prometheus metrics of one service, on a registry of its
// own so that two services in one process (tests, embedding) don't clash.
// It is the scheduler's job.Observer.
type Metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	submitted    *prometheus.CounterVec
	finished     *prometheus.CounterVec
	jobDuration  *prometheus.HistogramVec
	queueWait    *prometheus.HistogramVec
	gaugesLinked bool
}

// NewMetrics makes the registry with the HTTP, job, Go and process metrics.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "servicekit_http_requests_total", Help: "HTTP requests by route template, method and status code.",
	}, []string{"route", "method", "status"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "servicekit_http_request_duration_seconds", Help: "HTTP request duration by route template, method and status code.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "method", "status"})
	m.submitted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "servicekit_jobs_submitted_total", Help: "Jobs submitted, by type.",
	}, []string{"type"})
	m.finished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "servicekit_jobs_finished_total", Help: "Jobs that reached a terminal status, by type and status.",
	}, []string{"type", "status"})
	m.jobDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "servicekit_job_duration_seconds", Help: "Run time of the last attempt of finished jobs, by type and status.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 12),
	}, []string{"type", "status"})
	m.queueWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "servicekit_job_queue_wait_seconds", Help: "Time from submit to start of an attempt, by type.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 12),
	}, []string{"type"})
	m.reg.MustRegister(m.requests, m.duration, m.submitted, m.finished, m.jobDuration, m.queueWait,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the registry, for a program that adds its own metrics.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Submitted implements job.Observer.
func (m *Metrics) Submitted(jobType string) { m.submitted.WithLabelValues(jobType).Inc() }

// Started implements job.Observer.
func (m *Metrics) Started(r *job.Record, wait time.Duration) {
	m.queueWait.WithLabelValues(r.Type).Observe(wait.Seconds())
}

// Finished implements job.Observer.
func (m *Metrics) Finished(r *job.Record, status job.Status, ran time.Duration) {
	m.finished.WithLabelValues(r.Type, string(status)).Inc()
	m.jobDuration.WithLabelValues(r.Type, string(status)).Observe(ran.Seconds())
}

// linkGauges adds the pending and running gauges, read from the scheduler at scrape time.
func (m *Metrics) linkGauges(j *job.Scheduler, log *slog.Logger) {
	if m.gaugesLinked || j == nil {
		return
	}
	m.gaugesLinked = true
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "servicekit_jobs_pending", Help: "Jobs waiting to run, on all nodes."},
			func() float64 {
				n, err := j.PendingCount(context.Background())
				if err != nil {
					log.Warn("metrics: count pending jobs", "error", err)
				}
				return float64(n)
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "servicekit_jobs_running", Help: "Jobs running on this node."},
			func() float64 { return float64(j.RunningCount()) }),
	)
}

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
