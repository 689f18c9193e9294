package job_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/servicekit/servicekit/artifact"
	"github.com/servicekit/servicekit/bench"
	"github.com/servicekit/servicekit/internal/dbtest"
	"github.com/servicekit/servicekit/job"
	"github.com/servicekit/servicekit/store"
)

// The engine's hot path in-process, without HTTP, on SQLite (the default)
// or, with SERVICEKIT_BENCH_POSTGRES=1 and SERVICEKIT_TEST_POSTGRES set, on
// PostgreSQL. Each reports its figure next to the bare commit measured in
// the same run ("bare-commit-us"), so a slow shared machine shows as both
// moving, and the ratio ("commits/job") stays comparable:
//
//	go test -run '^$' -bench . -benchtime 2000x ./job/
//
// (BenchmarkEventFanout waits out the capture's flush delay per change:
// give it fewer, e.g. -bench Fanout -benchtime 100x.)

func benchDB(b *testing.B) *store.DB {
	b.Helper()
	if os.Getenv("SERVICEKIT_BENCH_POSTGRES") == "1" {
		return dbtest.Open(b, dbtest.PostgresURL(b))
	}
	return dbtest.Open(b, "sqlite:///"+filepath.Join(b.TempDir(), "bench.db"))
}

func benchScheduler(b *testing.B, db *store.DB, exec job.ExecutorFunc, opt job.Options) *job.Scheduler {
	b.Helper()
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	s := job.New(db, artifact.NewManager(db), exec, opt)
	if err := s.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Shutdown(context.Background(), 5*time.Second) })
	return s
}

var benchJob = job.NewJob{TaskID: "01TASK0000000000000000000T", Type: "function", Command: "fn"}

// bareCommit is one INSERT in its own transaction with the store's settings.
func bareCommit(b *testing.B) time.Duration {
	b.Helper()
	c, err := bench.NewBareCommitter(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	_, per, err := c.Rate(context.Background(), 300*time.Millisecond)
	if err != nil {
		b.Fatal(err)
	}
	return per
}

// cpuTime is this process's user and system CPU time so far: in these
// benchmarks the engine and its caller share the process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportPerJob(b *testing.B, elapsed, cpu time.Duration, jobs int, bare time.Duration) {
	per := elapsed / time.Duration(max(jobs, 1))
	b.ReportMetric(float64(cpu.Microseconds())/float64(max(jobs, 1)), "cpu-us/job")
	b.ReportMetric(float64(jobs)/elapsed.Seconds(), "jobs/s")
	b.ReportMetric(float64(per.Microseconds()), "us/job")
	b.ReportMetric(float64(bare.Microseconds()), "bare-commit-us")
	b.ReportMetric(float64(per)/float64(bare), "commits/job")
}

// BenchmarkIdleSubmitToCompleted: one job at a time beside a free slot —
// the dispatch wake-up path (stored already claimed, started, finished,
// Wait woken) — as latency.
func BenchmarkIdleSubmitToCompleted(b *testing.B) {
	db := benchDB(b)
	s := benchScheduler(b, db, func(context.Context, *job.Run) job.Outcome { return job.Outcome{} }, job.Options{MaxConcurrency: 8})
	bare := bareCommit(b)
	ctx := context.Background()
	b.ResetTimer()
	t0, c0 := time.Now(), cpuTime()
	for range b.N {
		r, err := s.Submit(ctx, benchJob)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Wait(ctx, r.ID); err != nil {
			b.Fatal(err)
		}
	}
	reportPerJob(b, time.Since(t0), cpuTime()-c0, b.N, bare)
}

// BenchmarkClaimAndFinish: b.N jobs queued behind busy slots, then let go:
// each costs a claim (shared by up to 8 jobs) and a finish (grouped with
// others in one commit).
func BenchmarkClaimAndFinish(b *testing.B) {
	db := benchDB(b)
	gate := make(chan struct{})
	var done sync.WaitGroup
	s := benchScheduler(b, db, func(ctx context.Context, run *job.Run) job.Outcome {
		if run.Job.Command == "gate" {
			<-gate
		}
		return job.Outcome{}
	}, job.Options{MaxConcurrency: 8, Observer: doneObserver{&done}})
	bare := bareCommit(b)
	ctx := context.Background()
	for range 8 {
		n := benchJob
		n.Command = "gate"
		done.Add(1)
		if _, err := s.Submit(ctx, n); err != nil {
			b.Fatal(err)
		}
	}
	for range b.N {
		done.Add(1)
		if _, err := s.Submit(ctx, benchJob); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	t0, c0 := time.Now(), cpuTime()
	close(gate)
	done.Wait()
	reportPerJob(b, time.Since(t0), cpuTime()-c0, b.N, bare)
	b.ReportMetric(float64(s.Stats().Claims)/float64(b.N), "claims/job")
}

type doneObserver struct{ wg *sync.WaitGroup }

func (doneObserver) Submitted(string)                                  {}
func (doneObserver) Started(*job.Record, time.Duration)                {}
func (o doneObserver) Finished(*job.Record, job.Status, time.Duration) { o.wg.Done() }

// BenchmarkThroughput16: 16 goroutines submitting and waiting, as the
// no-op bar's clients do, without HTTP.
func BenchmarkThroughput16(b *testing.B) {
	db := benchDB(b)
	s := benchScheduler(b, db, func(context.Context, *job.Run) job.Outcome { return job.Outcome{} }, job.Options{MaxConcurrency: 8})
	bare := bareCommit(b)
	ctx := context.Background()
	var wg sync.WaitGroup
	next := make(chan struct{}, b.N)
	for range b.N {
		next <- struct{}{}
	}
	close(next)
	b.ResetTimer()
	t0, c0 := time.Now(), cpuTime()
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				r, err := s.Submit(ctx, benchJob)
				if err != nil {
					b.Error(err)
					return
				}
				if _, err := s.Wait(ctx, r.ID); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	reportPerJob(b, time.Since(t0), cpuTime()-c0, b.N, bare)
}

// BenchmarkEventFanout: subscribers of one job woken by each of its
// changes, each reading the new events, as $stream clients do.
func BenchmarkEventFanout(b *testing.B) {
	for _, clients := range []int{1, 100} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			db := benchDB(b)
			release := make(chan struct{})
			progressed := make(chan struct{})
			s := benchScheduler(b, db, func(ctx context.Context, run *job.Run) job.Outcome {
				for {
					select {
					case <-release:
						return job.Outcome{}
					case <-progressed:
						run.Progress(1, 2, "step")
					}
				}
			}, job.Options{MaxConcurrency: 1})
			ctx := context.Background()
			r, err := s.Submit(ctx, benchJob)
			if err != nil {
				b.Fatal(err)
			}
			var wg sync.WaitGroup
			seen := make(chan int64, clients)
			for range clients {
				ch, stop := s.Subscribe(r.ID)
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer stop()
					var after int64
					for {
						evs, err := s.EventsAfter(ctx, r.ID, after)
						if err != nil {
							b.Error(err)
							return
						}
						for _, e := range evs {
							after = e.ID
							if e.Kind == "status" && e.Status.Terminal() {
								return
							}
						}
						if len(evs) > 0 {
							seen <- after
						}
						<-ch
					}
				}()
			}
			for range clients { // each has read the first events
				<-seen
			}
			b.ResetTimer()
			t0, c0 := time.Now(), cpuTime()
			for range b.N {
				progressed <- struct{}{}
				for range clients {
					<-seen
				}
			}
			el, cpu := time.Since(t0), cpuTime()-c0
			b.StopTimer()
			close(release)
			wg.Wait()
			// Wall time per change includes the capture's batching delay
			// (LogFlushDelay); CPU per delivery is the fan-out's cost.
			b.ReportMetric(float64(el.Microseconds())/float64(b.N), "us/change")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*clients), "cpu-us/delivery")
		})
	}
}

// BenchmarkOutputCapture: a job writing b.N lines of 100 bytes to stdout;
// they are stored as batched log events and kept in the artifact's tail.
func BenchmarkOutputCapture(b *testing.B) {
	db := benchDB(b)
	line := strings.Repeat("x", 99) + "\n"
	s := benchScheduler(b, db, func(ctx context.Context, run *job.Run) job.Outcome {
		for range b.N {
			if _, err := run.Stdout.Write([]byte(line)); err != nil {
				return job.Outcome{Err: err}
			}
		}
		return job.Outcome{}
	}, job.Options{MaxConcurrency: 1})
	ctx := context.Background()
	b.SetBytes(int64(len(line)))
	b.ResetTimer()
	r, err := s.Submit(ctx, benchJob)
	if err != nil {
		b.Fatal(err)
	}
	if got, err := s.Wait(ctx, r.ID); err != nil || got.Status != job.Completed {
		b.Fatalf("%v %v", got, err)
	}
}
