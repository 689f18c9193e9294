// Package faulttest is servicekit's fault suite: it does to real server
// processes what an attacker or a bad day would, and checks from the
// outside that nothing accepted is lost and nothing a job started escapes.
// RELIABILITY.md at the repository root has the table of what is tried,
// the figures of a run, and the command that reproduces each row.
//
// The package holds only tests (and the test server they run). The suite
// builds ./testserver once per run with `go build` — with -race when the
// tests run with -race, so a data race in a server fails the test that
// met it — and starts it as `testserver serve --addr 127.0.0.1:PORT
// --database sqlite:///DIR/fault.db --lease 2s`, talking to it over HTTP
// on loopback as a client would. The test server is cmd/servicekit plus
// two Go functions the stock binary lacks: block_on_fifo, which ignores
// its context (it blocks opening a FIFO, where no cancel reaches), and
// huge_result, which returns a result as large as asked. The example row
// builds examples/task_execution the same way. FAULTTEST_BIN and
// FAULTTEST_EXAMPLE_BIN name prebuilt binaries to test instead, e.g. ones
// built from an older commit, to see a test fail without a fix.
//
// What ran is read from what really happened, not from the job records
// alone: shell jobs append their $SERVICEKIT_JOB_ID to a file (to count
// runs per job), and a job's processes are found in /proc by the
// SERVICEKIT_JOB_ID in their environment, which survives setsid, setpgid,
// fork and exec. Every shell job of a run also carries a marker in its
// environment, and whatever such a process is left when the run ends is
// killed, so a failing containment test leaves nothing behind.
//
// Faults are real: SIGKILL of the server process (at random under load,
// and right after a job's process exits), the SQLite file deleted or
// replaced under a running server, a disk filled to the last byte (a
// 16 MiB tmpfs the test mounts; that needs root, as in CI — elsewhere the
// test skips, saying so, and under CI=true it fails), a file descriptor
// limit lowered with ulimit before the server starts, thousands of idle
// connections, event-stream clients with a 4 KiB receive buffer that never
// read. Every wait polls for its condition with a deadline; the few
// sleeps are the pace of a client or the moment of a kill, which are what
// a case is about. Each test logs a line starting with FIGURES, the
// numbers RELIABILITY.md reports: `go test -v ./faulttest/ | grep FIGURES`.
//
// The suite runs in `go test ./...` (and in .ci/run with -race, as root);
// with -race on two cores it takes about two minutes once the servers are
// built.
package faulttest
