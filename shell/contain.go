//go:build unix

package shell

// Containment modes, as ContainmentMode reports them (not to be confused
// with the shell policy's Mode).
const (
	// ContainCgroup: each run has a cgroup v2 of its own, emptied with
	// cgroup.kill when the run ends, besides a supervisor that is a child
	// subreaper.
	ContainCgroup = "cgroup"
	// ContainSubreaper: each run has a supervisor that is a child subreaper,
	// so every process of the job stays its descendant and is killed
	// through /proc.
	ContainSubreaper = "subreaper"
	// ContainProcessGroup: systems other than Linux, where only the process
	// group is signalled.
	ContainProcessGroup = "process-group"
)

const (
	// ContainmentEnv names the environment variable that chooses the
	// containment: "subreaper" keeps cgroups out of it; unset (or "auto")
	// uses a cgroup per job where the server may make them.
	ContainmentEnv = "SERVICEKIT_CONTAINMENT"
	// JobIDEnv is the environment variable holding a job's id (the task
	// package sets it); KillStrays finds a job's processes by it, and a
	// run's cgroup is named after it.
	JobIDEnv = "SERVICEKIT_JOB_ID"
	// tokenEnv holds a token unique to each run, set by Run, by which a
	// run's own processes are told from those of another attempt of the
	// same job.
	tokenEnv = "SERVICEKIT_RUN_TOKEN"
)
