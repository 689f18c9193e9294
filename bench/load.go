package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// LoadConfig describes a closed-loop load: Clients workers each run one job
// at a time, starting the next as soon as the last one ended. Closed loop
// is what "16 concurrent clients" means, and it cannot overrun the server
// the way a fixed arrival rate can, so the rate it reaches is the server's.
type LoadConfig struct {
	Clients int
	// Duration stops the clients from starting new jobs after this long (0: no limit).
	Duration time.Duration
	// Jobs stops them after this many jobs were started in all (0: no limit);
	// benchmarks set it to b.N.
	Jobs int
	// Job runs one job to its end and returns how long it took (the time
	// the user saw, which may exclude setup done before the clock started).
	Job func(ctx context.Context) (time.Duration, error)
}

// LoadResult is what a load run did.
type LoadResult struct {
	Jobs    int           // jobs that ended as expected
	Errors  int           // jobs that failed or could not be run
	Elapsed time.Duration // from the first start until the last client stopped
	// Latencies of the successful jobs, sorted ascending.
	Latencies []time.Duration
	// ErrorSamples holds up to five distinct error messages.
	ErrorSamples []string
}

// Rate is the successful jobs per second.
func (r *LoadResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Jobs) / r.Elapsed.Seconds()
}

// Percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of the
// latencies, or 0 when there are none.
func (r *LoadResult) Percentile(p float64) time.Duration {
	return Percentile(r.Latencies, p)
}

// Percentile returns the nearest-rank p-th percentile of sorted durations.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(float64(len(sorted)) * p / 100))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// Load runs the closed-loop load described by cfg until its budget is
// spent or ctx ends. A job in progress when the budget runs out is allowed
// to finish and counts, so Elapsed covers every counted job.
func Load(ctx context.Context, cfg LoadConfig) *LoadResult {
	clients := max(cfg.Clients, 1)
	var deadline time.Time
	start := time.Now()
	if cfg.Duration > 0 {
		deadline = start.Add(cfg.Duration)
	}
	var started atomic.Int64
	take := func() bool {
		if ctx.Err() != nil || (!deadline.IsZero() && !time.Now().Before(deadline)) {
			return false
		}
		return cfg.Jobs <= 0 || started.Add(1) <= int64(cfg.Jobs)
	}
	type worker struct {
		lat    []time.Duration
		errs   int
		sample []string
	}
	workers := make([]worker, clients)
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		wg.Go(func() {
			for take() {
				d, err := cfg.Job(ctx)
				if err != nil {
					w.errs++
					if len(w.sample) < 5 {
						w.sample = append(w.sample, err.Error())
					}
					// Do not spin against a server that fails fast.
					time.Sleep(10 * time.Millisecond)
					continue
				}
				w.lat = append(w.lat, d)
			}
		})
	}
	wg.Wait()
	res := &LoadResult{Elapsed: time.Since(start)}
	for _, w := range workers {
		res.Latencies = append(res.Latencies, w.lat...)
		res.Errors += w.errs
		for _, s := range w.sample {
			if len(res.ErrorSamples) < 5 && !slices.Contains(res.ErrorSamples, s) {
				res.ErrorSamples = append(res.ErrorSamples, s)
			}
		}
	}
	res.Jobs = len(res.Latencies)
	slices.Sort(res.Latencies)
	return res
}

// String summarizes the result on one line.
func (r *LoadResult) String() string {
	return fmt.Sprintf("%d jobs in %s = %.0f jobs/s; latency p50 %s p90 %s p99 %s max %s; %d errors",
		r.Jobs, r.Elapsed.Round(time.Millisecond), r.Rate(),
		FormatDuration(r.Percentile(50)), FormatDuration(r.Percentile(90)), FormatDuration(r.Percentile(99)), FormatDuration(r.Percentile(100)),
		r.Errors)
}

// FormatDuration rounds a latency for humans: to the microsecond below
// 10 ms, to 0.1 ms above, so that columns stay readable.
func FormatDuration(d time.Duration) string {
	if d < 10*time.Millisecond {
		return d.Round(time.Microsecond).String()
	}
	return d.Round(100 * time.Microsecond).String()
}
