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
	fires       prometheus.Counter
	skips       *prometheus.CounterVec
	lag         prometheus.Histogram
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
	m.fires = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "servicekit_schedule_fires_total", Help: "Schedule slots this node fired as a job.",
	})
	m.skips = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "servicekit_schedule_skips_total",
		Help: "Schedule slots that fired no job, by reason: overlap (a job of the task was still going), missed (catch_up left it out), queue_full, error.",
	}, []string{"reason"})
	m.lag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "servicekit_schedule_lag_seconds", Help: "Time from a schedule slot to the start of its job's first attempt.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
	})
	reg.MustRegister(m.submitted, m.finished, m.jobDuration, m.queueWait, m.fires, m.skips, m.lag)
	return m
}

// Submitted implements Observer.
func (m *Metrics) Submitted(jobType string) { m.submitted.WithLabelValues(jobType).Inc() }

// Started implements Observer.
func (m *Metrics) Started(r *Record, wait time.Duration) {
	m.queueWait.WithLabelValues(r.Type).Observe(wait.Seconds())
	if r.ScheduledFor != nil && r.Attempt == 1 && r.StartedAt != nil {
		m.lag.Observe(max(r.StartedAt.Sub(*r.ScheduledFor), 0).Seconds())
	}
}

// Fired counts a schedule slot fired by this node (task.ScheduleObserver).
func (m *Metrics) Fired() { m.fires.Inc() }

// Skipped counts a schedule slot that fired no job (task.ScheduleObserver).
func (m *Metrics) Skipped(reason string) { m.skips.WithLabelValues(reason).Inc() }

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
