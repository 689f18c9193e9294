//go:build unix && !linux

package shell

// waitExited does nothing where waitid cannot wait for exit alone (on
// Darwin it also returns for stopped children). Run then kills the orphans
// just after the shell is reaped, with a tiny window in which the group id
// could in theory be reused.
func waitExited(pid int) {}
