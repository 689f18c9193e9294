// Package shell runs one shell command line the way a job service must:
// cancelable, leaving no processes behind, and never hanging on its output.
//
// # Process group
//
// The command runs as /bin/sh -c in a new process group whose id is the
// shell's pid (Setpgid). Everything the shell starts (pipelines, subshells,
// "cmd &" background jobs, their children) inherits that group unless it
// deliberately leaves with setsid or setpgid. Signals go to the whole group
// with kill(-pgid), because signalling only the shell would leave its
// children running: sh does not forward signals to them.
//
// # Cancellation: SIGTERM, then SIGKILL
//
// When the context passed to Run is done (cancel, timeout, server shutdown),
// the group receives SIGTERM, plus SIGCONT so that stopped members can act on
// it. Run then waits until the shell has exited and no process holds the
// job's stdout or stderr any more, or until Cmd.KillGrace (5s by default) has
// passed, whichever is first; then what is left of the group gets SIGKILL. A
// command that handles SIGTERM gets that long to clean up; one that ignores
// it cannot delay cancellation for longer.
//
// Waiting for the output pipes, not just the shell, matters because the
// shell itself usually dies of the SIGTERM at once, while the program it ran
// is still cleaning up: killing the group as soon as the shell is gone would
// turn every cancellation into an immediate SIGKILL. The pipes are how Run
// can tell, without cgroups, that the job's other processes are gone, since
// they are not Run's children. A process that redirected both streams away
// from the job is not waited for.
//
// # Orphan cleanup
//
// When the shell exits on its own, whatever is still left in its process
// group is killed with SIGKILL at once, and Run returns without waiting for
// it; after a cancellation the same happens once the grace period above
// ends. A job ends when its shell ends: "server &" in a job would otherwise
// outlive the job, invisible to the queue, and since it inherited the job's
// stdout and stderr, Run could not even tell the job's output had ended.
// Jobs that want a long-lived process must hand it to a real supervisor.
//
// The group is killed while the exited shell is still an unreaped zombie
// (on Linux, via waitid with WNOWAIT), so its pid, which is the group id,
// cannot have been reused by an unrelated process group.
//
// A process that left the group (setsid, a daemonizing double fork) is beyond
// reach of the group kill; only a cgroup could find it. If it still holds the
// output pipes, Run waits at most about a second for them to close, then
// collects what the pipes already hold and returns; later output of that
// process is lost.
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
// directory would.
package shell
