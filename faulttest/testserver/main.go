// Command testserver is the servicekit command line plus the Go functions
// the fault suite needs and the stock binary lacks: one that ignores its
// context (blocked in a read that no cancel reaches) and one that returns a
// result as large as asked. Everything else — flags, environment, the shell
// runner, the engine — is the stock `servicekit serve`, so what the suite
// proves of this binary holds for cmd/servicekit.
package main

import (
	"context"
	"io"
	"os"
	"strings"

	"github.com/servicekit/servicekit"
	"github.com/servicekit/servicekit/cli"
	"github.com/servicekit/servicekit/task"
)

// BlockParams name the FIFO block_on_fifo reads.
type BlockParams struct {
	FIFO string `json:"fifo" doc:"path of a named pipe; the function blocks until a writer opens it and closes it"`
}

// blockOnFIFO ignores its context on purpose: opening a FIFO for reading
// blocks in the kernel until a writer comes, and nothing a cancel or a
// timeout does reaches it. The test releases it by writing to the FIFO,
// which makes the function return late, after its job has ended.
func blockOnFIFO(ctx context.Context, p BlockParams) (map[string]any, error) {
	f, err := os.Open(p.FIFO)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	return map[string]any{"late": true, "read": string(b)}, err
}

// HugeParams size huge_result's result.
type HugeParams struct {
	Bytes int `json:"bytes" doc:"length of the string in the result"`
}

// hugeResult returns {"x": "aaa…"} of the given length: over the server's
// result size limit, the job must fail and store none of it.
func hugeResult(p HugeParams) map[string]any {
	return map[string]any{"x": strings.Repeat("a", p.Bytes)}
}

func main() {
	task.MustRegister("block_on_fifo", blockOnFIFO, task.Description("Block reading a FIFO, ignoring the context."))
	task.MustRegister("huge_result", hugeResult, task.Description("Return a result of the given size."))
	cli.Main(servicekit.Info{DisplayName: "servicekit fault-suite server", Summary: "servicekit with test functions"})
}
