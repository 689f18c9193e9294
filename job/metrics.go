package job

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics is the Prometheus side of the engine: an Observer that counts
// submits and ends and times runs and queue waits, plus the pending and
// running gauges read from the scheduler at scrape time. Each job's end is
// observed exactly once, by the node whose statement ended it (its owner,
// or the node that rescued it).
type Metrics struct {
	submitted   *prometheus.CounterVec
	finished    *prometheus.CounterVec
	jobDuration *prometheus.HistogramVec
	queueWait   *prometheus.HistogramVec
	reg         prometheus.Registerer
}

// NewMetrics registers the job metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{reg: reg}
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
	reg.MustRegister(m.submitted, m.finished, m.jobDuration, m.queueWait)
	return m
}

// Submitted implements Observer.
func (m *Metrics) Submitted(jobType string) { m.submitted.WithLabelValues(jobType).Inc() }

// Started implements Observer.
func (m *Metrics) Started(r *Record, wait time.Duration) {
	m.queueWait.WithLabelValues(r.Type).Observe(wait.Seconds())
}

// Finished implements Observer.
func (m *Metrics) Finished(r *Record, status Status, ran time.Duration) {
	m.finished.WithLabelValues(r.Type, string(status)).Inc()
	m.jobDuration.WithLabelValues(r.Type, string(status)).Observe(ran.Seconds())
}

// Watch adds the pending (all nodes) and running (this node) gauges of s.
func (m *Metrics) Watch(s *Scheduler, log *slog.Logger) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "servicekit_jobs_pending", Help: "Jobs waiting to run, on all nodes."},
			func() float64 {
				n, err := s.PendingCount(context.Background())
				if err != nil {
					log.Warn("metrics: count pending jobs", "error", err)
				}
				return float64(n)
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "servicekit_jobs_running", Help: "Jobs running on this node."},
			func() float64 { return float64(s.RunningCount()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "servicekit_job_goroutines_abandoned",
			Help: "Job attempts that did not return after they were stopped (their slot was given back); their goroutines still run."},
			func() float64 { return float64(s.abandoned.Load()) }),
	)
}
