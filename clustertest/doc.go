// Package clustertest runs several real servicekit server processes on one
// PostgreSQL database and checks, from the outside, what the engine promises
// a cluster of nodes: that they come up together on an empty database, that
// every accepted job runs exactly once and is shared among the nodes, that
// the jobs of a node killed with SIGKILL are rescued by the others, that
// $cancel, $stream and DELETE work through any node, and that a node cut
// off from the database stops its runs before another node may rescue
// them (self-fencing), so no job ever runs twice at once.
//
// The package holds only tests. They build cmd/servicekit once per run with
// `go build`, start each node as `servicekit serve --addr 127.0.0.1:PORT
// --database <url> --lease 3s --shell any`, and talk to it over HTTP as a
// user would. Side effects are counted in files the shell jobs write: a job
// appends a line naming $SERVICEKIT_JOB_ID, $SERVICEKIT_JOB_ATTEMPT and
// $SERVICEKIT_NODE, so "exactly once" and "never twice at once" are read
// from what really ran, not from the job records alone. A node that must
// lose its database is given a TCP proxy in front of PostgreSQL that the
// test cuts: closing its connections, blackholing them (open and silent,
// as a dead network path), or right after the node's lease renewal reached
// the database, leaving its transaction open; and then heals.
//
// The tests need a PostgreSQL server: set SERVICEKIT_TEST_POSTGRES to its
// URL (`.ci/run` does; locally `url=$(.ci/postgres.sh start /tmp/skpg)` and
// export it). Each test gets a schema of its own (internal/dbtest). Without
// the URL they skip; under CI=true they fail. The lease is 3 s so that a
// rescue takes seconds; every wait polls for its condition with a deadline.
// When the test binary is built with -race, the servers are too, and a data
// race reported in any server's log fails the test. CLUSTERTEST_BIN names a
// prebuilt servicekit binary to test instead, e.g. one built from an older
// commit or with a fix undone, to see a test fail without the fix.
package clustertest
