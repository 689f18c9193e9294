package shell

import (
	"syscall"
	"unsafe"
)

// waitExited blocks until process pid has exited, without reaping it: the
// zombie keeps pid, and so the process group id, from being reused until
// exec.Cmd.Wait reaps it. Errors (EINTR aside) are ignored; Wait then
// reports what is wrong.
func waitExited(pid int) {
	const pPID = 1     // P_PID idtype
	var info [128]byte // siginfo_t, unused
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info)), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		if errno != syscall.EINTR {
			return
		}
	}
}
