// Package shell runs one shell command line the way a job service must:
// cancelable, leaving no process behind (not even one that leaves its
// session, nor when the server is killed), and never hanging on its output.
//
// # Containment
//
// Every process a job starts is killed when the job ends, whether the
// command exits, is canceled or times out, and when the server itself dies,
// even with SIGKILL: a process that calls setsid or setpgid, double-forks
// into a daemon, traps SIGTERM or is stopped does not outlive its job. A
// job ends when its shell ends: "server &" in a job would otherwise outlive
// the job, invisible to the queue. Jobs that want a long-lived process must
// hand it to a real service manager.
//
// Each run is handed to a small supervisor: the server's own binary,
// re-executed through /proc/self/exe with the hidden argument
// "__servicekit_supervise", which this package's init catches before main
// runs (so any binary that links this package, a program of one's own built
// on servicekit included, can supervise). The supervisor is a child
// subreaper (PR_SET_CHILD_SUBREAPER) and starts /bin/sh -c COMMAND, in a
// process group of its own, with the job's environment, directory and
// output pipes, which the server passes over a unix socket. An orphan is
// reparented to the nearest subreaper, so every process of the job,
// whatever it does with sessions and groups, stays a descendant of the
// supervisor: the supervisor finds them all through /proc, kills them, and
// reaps them. It tells the server the shell's exit status (so the Result is
// exactly what a direct child would give) and acts on the server's
// "terminate" and "kill". A supervisor runs one job at a time and, once
// every process of its job is gone, takes the next: up to 8 idle ones are
// kept, since starting one costs as much as a short job.
//
// The supervisor learns that the server died in two ways: its socket
// reaches end of file (the kernel closes the server's end when it dies,
// however it dies), and its parent death signal (Pdeathsig, SIGTERM), taken
// as such only when its parent has indeed changed, since Go also sends it
// when the forking thread ends. Either way it kills the job's processes and
// exits. If a supervisor is killed during a job, the server kills, itself,
// the job's cgroup and every process carrying the run's token, and Run
// returns an error saying so.
//
// ContainmentMode says which of two modes is active, detected at the first
// run (by running a probe job each way) and logged once through
// slog.Default:
//
//   - "cgroup": where cgroup v2 is mounted (the unified hierarchy of a
//     hybrid system counts) and the server may create cgroups below its own
//     (root, or a delegated subtree as systemd's Delegate=yes gives), the
//     shell is also born (clone3 CLONE_INTO_CGROUP) in a cgroup of the
//     supervisor's, SERVER_CGROUP/servicekit/sup.PID-N, and whatever the
//     job leaves is killed with cgroup.kill, which no process can fork its
//     way out of. The cgroup serves job after job while jobs leave nothing
//     behind; one that had to be killed is replaced, because Linux kills a
//     process born into a cgroup after a cgroup.kill. Linux 5.14 or later.
//   - "subreaper": otherwise, the supervisor alone, which kills the job's
//     descendants through /proc, over and over until none is left.
//
// SERVICEKIT_CONTAINMENT=subreaper in the server's environment keeps
// cgroups out (for a host where another manager owns them); unset, or
// "auto", picks the strongest mode available.
//
// Without a supervisor (its probe failed: a binary that cannot re-execute
// itself, such as a Go library loaded into another program) the server
// starts the shell directly, in its own process group and in a cgroup of
// the run's own (JOBID.TOKEN) if cgroups can be had, with SIGKILL as parent
// death signal from a thread kept for the shell's lifetime, and says so in
// the log with a warning. Processes that
// left the group are then found by their cgroup or by the variable
// SERVICEKIT_RUN_TOKEN, unique to the run, in their environment: one that
// replaced its environment outside a cgroup escapes, and when the server is
// killed only the shell dies with it (KillStrays ends the rest at the next
// start).
//
// KillStrays(jobID) kills every process on the host whose environment holds
// SERVICEKIT_JOB_ID=jobID, and what is left in cgroups of servers that no
// longer run: the rescue of an attempt whose server died calls it before
// retrying the job. At detection, too, cgroups left by servers that no
// longer run are emptied and removed.
//
// # Cancellation: SIGTERM, then SIGKILL
//
// When the context passed to Run is done (cancel, timeout, server shutdown),
// every process of the job receives SIGTERM, plus SIGCONT so that stopped
// ones can act on it: the process group at once, then each process that
// left it. Run then waits until the shell has exited and no process holds
// the job's stdout or stderr any more, or until Cmd.KillGrace (5s by
// default) has passed, whichever is first; then what is left gets SIGKILL.
// A command that handles SIGTERM gets that long to clean up; one that
// ignores it cannot delay cancellation for longer.
//
// Waiting for the output pipes, not just the shell, matters because the
// shell itself usually dies of the SIGTERM at once, while the program it ran
// is still cleaning up: killing everything as soon as the shell is gone
// would turn every cancellation into an immediate SIGKILL. A process that
// redirected both streams away from the job is not waited for.
//
// When the shell exits on its own, whatever is left of the job is killed
// with SIGKILL at once, and Run returns once it is gone. Should a process
// escape containment (see above) and still hold the output pipes, Run waits
// at most about a second for them to close, then collects what the pipes
// already hold and returns; later output of that process is lost.
//
// # Output
//
// Output is copied to Cmd.Stdout and Cmd.Stderr as it arrives, from one
// goroutine per stream, and everything the job wrote is delivered before Run
// returns. If Stdout and Stderr are the same writer, both streams share one
// pipe, so the writer is never called concurrently and the two streams
// interleave in the order the job wrote them. Write errors are not
// reported: after one the stream is read and discarded, so a failing writer
// cannot block the job on a full pipe. A writer that blocks does block Run.
//
// Stdin is /dev/null: a job has no terminal, and a command that reads stdin
// should see end of file at once rather than hang.
//
// # Environment
//
// The job's environment is the server's own (os.Environ) with Cmd.Env laid
// over it key by key: a task variable replaces a server variable of the same
// name, and every other server variable (PATH, HOME, ...) is kept. When Dir
// is set and Env does not set PWD, PWD is set to Dir, as a login into that
// directory would. Run adds SERVICEKIT_RUN_TOKEN, unique to the run, by
// which containment can tell the run's processes apart (see above).
package shell
