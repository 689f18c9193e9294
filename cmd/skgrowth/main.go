// Command skgrowth measures how a servicekit server's costs grow with what
// it holds and serves: stored jobs, clients of one job's event stream, and
// the output of one job. Each measurement starts the real server binary
// (built from ./examples/task_execution, or any binary with the same
// serve command) on a fresh database of its own, talks to it over HTTP,
// and reads its CPU time and memory from /proc:
//
//	go build -o /tmp/skg-server ./examples/task_execution
//	go run ./cmd/skgrowth stored -bin /tmp/skg-server -dir /tmp/skg/stored -sizes 1000,100000,1000000
//	go run ./cmd/skgrowth sse    -bin /tmp/skg-server -dir /tmp/skg/sse -clients 1,10,100,1000
//	go run ./cmd/skgrowth output -bin /tmp/skg-server -dir /tmp/skg/out -sizes 1MB,10MB,100MB,1GB
//
// stored fills the database with finished jobs by writing the rows directly
// while the server is stopped (the columns and events Insert, ClaimNext and
// Finish would have written; filling a million jobs through the API would
// take an hour), then starts the server and times list, get, $orphaned and
// the claim of a new job. With -pg it does the same on PostgreSQL.
//
// sse runs one chatty shell job and follows it with N clients at once,
// each event's delay measured from the moment the shell printed it;
// -slow adds a client that never reads, to show it holds nobody back.
//
// output runs one job printing N bytes and times it to completed, with the
// server's peak RSS, beside the same pipeline run bare in the same run.
//
// Results print as Markdown tables for BENCHMARKS.md. The machine this was
// written on has two shared cores: every measurement runs alone, one after
// the other, and the load generator's own CPU is on the same cores.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "stored":
		err = runStored(ctx, os.Args[2:])
	case "sse":
		err = runSSE(ctx, os.Args[2:])
	case "output":
		err = runOutput(ctx, os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "skgrowth:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: skgrowth stored|sse|output -bin SERVER [flags]  (skgrowth CMD -h for the flags)")
	os.Exit(2)
}
