package shell

// The messages between the server and a supervisor, over a unix stream
// socket: a 4-byte big-endian length, then that many bytes of JSON; file
// descriptors (a job's stdout and stderr) travel as SCM_RIGHTS with the
// first bytes of the message they belong to.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"syscall"
)

// maxMessage bounds a message: a command line and environment can hold
// about 2 MiB (the kernel's limit on what exec takes), never more.
const maxMessage = 16 << 20

// message is one message either way. Server to supervisor: "run" (with
// Command, Env, Dir, Cgroup and two descriptors), "term", "kill".
// Supervisor to server: "started" (Pid), "error" (Text), "exit" (Status, the
// shell's raw wait status), then "done" when every process of the job is
// gone, or "dirty" when some outlived SIGKILL (the supervisor then exits
// rather than take another job). Unless "term" came first, the supervisor
// kills what is left of the job as soon as the shell exits and sends "exit"
// and "done" together; after a "term" it waits for "kill", so that the
// job's processes get their grace.
type message struct {
	Op      string   `json:"op"`
	Command string   `json:"command,omitempty"`
	Env     []string `json:"env,omitempty"`
	Dir     string   `json:"dir,omitempty"`
	Cgroup  string   `json:"cgroup,omitempty"`
	Pid     int      `json:"pid,omitempty"`
	Status  uint32   `json:"status"`
	Text    string   `json:"text,omitempty"`
	// With "done": the supervisor removed the job's cgroup (it had to be
	// killed, and cannot take new processes); the next job needs a new one.
	CgroupRemoved bool `json:"cgroup_removed,omitempty"`
}

func writeMessage(c *net.UnixConn, m message, fds ...int) error {
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	b := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(body)), uint32(len(body)))
	b = append(b, body...)
	var oob []byte
	if len(fds) > 0 {
		oob = syscall.UnixRights(fds...)
	}
	n, _, err := c.WriteMsgUnix(b, oob, nil)
	if err == nil && n < len(b) {
		_, err = c.Write(b[n:])
	}
	return err
}

// readMessage reads one message and the descriptors sent with it, which
// the caller must close.
func readMessage(c *net.UnixConn) (message, []int, error) {
	var m message
	head := make([]byte, 4)
	oob := make([]byte, syscall.CmsgSpace(4*4))
	n, oobn, _, _, err := c.ReadMsgUnix(head, oob)
	fds := parseRights(oob[:oobn])
	if err == nil && n < len(head) {
		_, err = io.ReadFull(c, head[n:])
	}
	if err != nil {
		closeAll(fds)
		return m, nil, err
	}
	size := binary.BigEndian.Uint32(head)
	if size > maxMessage {
		closeAll(fds)
		return m, nil, fmt.Errorf("shell: a message of %d bytes from the other end", size)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(c, body); err != nil {
		closeAll(fds)
		return m, nil, err
	}
	if err := json.Unmarshal(body, &m); err != nil {
		closeAll(fds)
		return m, nil, err
	}
	return m, fds, nil
}

func parseRights(oob []byte) []int {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for _, cm := range msgs {
		if rights, err := syscall.ParseUnixRights(&cm); err == nil {
			for _, fd := range rights {
				syscall.CloseOnExec(fd)
			}
			fds = append(fds, rights...)
		}
	}
	return fds
}

func closeAll(fds []int) {
	for _, fd := range fds {
		syscall.Close(fd)
	}
}
