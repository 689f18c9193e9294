// Package bench measures servicekit against its performance targets and,
// in the same run, against the physical limits underneath it.
//
// The targets (from the performance issue) are:
//
//  1. a no-op function job, from POST $execute to its `completed` status
//     event on $stream, on an idle server over HTTP: p50 ≤ 2 ms;
//  2. no-op function jobs over HTTP with 16 concurrent clients: ≥ 3,000 jobs/s;
//  3. shell `true` jobs: ≥ 70 % of the bare fork/exec rate;
//  4. idle server RSS < 40 MB.
//
// A job's cost is bounded below by two things the service cannot make
// cheaper: a durable SQLite commit (a job is stored before $execute answers,
// and its end is stored with its artifact) and, for shell jobs, a fork/exec
// of /bin/sh. Absolute numbers mean little on a shared two-core machine, so
// every comparison is made against those limits measured by the same
// process at the same time; a ratio survives noise far better than a rate.
//
// The benchmarks live in bench_test.go:
//
//	go test -run '^$' -bench . -benchtime 2s ./bench/
//
// The non-test code here is the machinery they share with cmd/skload, the
// load generator for a running server: an HTTP client that executes a task
// and follows its event stream to the terminal status ([Client]), a
// closed-loop load runner with latency percentiles ([Load]), the bare limits
// ([BareCommitter], [ForkExecRate]) and the RSS probe ([ReadRSS]). Sharing it
// keeps "a job over HTTP" meaning exactly the same thing in both places.
package bench
