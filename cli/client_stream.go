package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/servicekit/servicekit/job"
)

// maxResumes is how many times in a row a watch reconnects to a job's event
// stream that broke off without progress before giving up. The server keeps
// every event, so a reconnect with Last-Event-ID loses and repeats nothing;
// the limit only stops a client from spinning on a server that is gone.
const maxResumes = 5

// errStreamEnded is a stream that closed before the job ended (a restarted
// server, a proxy's idle timeout): worth resuming.
var errStreamEnded = errors.New("the event stream ended before the job did")

// watchHooks are told what a watch sees, as it arrives. Either may be nil.
type watchHooks struct {
	// onLog gets each output line.
	onLog func(stream, line string)
	// onStatus gets each non-terminal status event: the whole job, so the
	// caller sees attempts begin and end and progress move.
	onStatus func(r *job.Record)
}

// watchJob follows the job's $stream until it reaches a terminal status,
// telling h what happens on the way. It returns the terminal status event's
// data — the whole job, as GET would answer — both raw for -o json and
// decoded. Waiting on the stream rather than polling means the client
// learns of the end as soon as the server does.
func (c *apiClient) watchJob(ctx context.Context, id string, h watchHooks) (json.RawMessage, *job.Record, error) {
	var lastID string
	failures := 0
	for {
		progressed, raw, rec, err := c.streamJobOnce(ctx, id, &lastID, h)
		if err == nil {
			return raw, rec, nil
		}
		// A problem answer will not change on retry, and a server that was
		// never reached is not running: only a stream that broke off is resumed.
		var p *ProblemError
		var ce *ConnectError
		if errors.As(err, &p) || ctx.Err() != nil || (lastID == "" && errors.As(err, &ce)) {
			return nil, nil, err
		}
		if progressed {
			failures = 0
		}
		if failures++; failures > maxResumes {
			return nil, nil, &lostError{fmt.Errorf("following job %s: %w", id, err)}
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(time.Duration(failures) * 500 * time.Millisecond):
		}
	}
}

// streamJobOnce reads one connection of the job's event stream, resuming
// after *lastID and advancing it. It reports whether it saw any event, so a
// stream that keeps breaking after progress is not counted as dead.
func (c *apiClient) streamJobOnce(ctx context.Context, id string, lastID *string, h watchHooks) (progressed bool, raw json.RawMessage, rec *job.Record, err error) {
	hdr := http.Header{"Accept": {"text/event-stream"}}
	if *lastID != "" {
		hdr.Set("Last-Event-ID", *lastID)
	}
	resp, err := c.send(ctx, http.MethodGet, "/api/v1/jobs/"+pathID(id)+"/$stream", nil, nil, hdr)
	if err != nil {
		return false, nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return false, nil, nil, problemFrom(resp, data)
	}
	err = readEvents(resp.Body, func(ev sseEvent) (bool, error) {
		progressed = true
		if ev.id != "" {
			*lastID = ev.id
		}
		switch ev.event {
		case "log":
			var l job.LogLine
			if err := json.Unmarshal(ev.data, &l); err != nil {
				return false, fmt.Errorf("job %s: bad log event: %w", id, err)
			}
			if h.onLog != nil {
				h.onLog(l.Stream, l.Line)
			}
		case "status":
			var st struct {
				Status string `json:"status"`
			}
			if err := json.Unmarshal(ev.data, &st); err != nil {
				return false, fmt.Errorf("job %s: bad status event: %w", id, err)
			}
			if st.Status == "deleted" {
				return false, fmt.Errorf("job %s was deleted before it ended", id)
			}
			r := new(job.Record)
			if err := decode(ev.data, r); err != nil {
				return false, err
			}
			if !r.Status.Terminal() {
				if h.onStatus != nil {
					h.onStatus(r)
				}
				return false, nil
			}
			rec, raw = r, append(json.RawMessage(nil), ev.data...)
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return progressed, nil, nil, ctx.Err()
		}
		return progressed, nil, nil, err
	}
	if rec == nil {
		return progressed, nil, nil, errStreamEnded
	}
	return progressed, raw, rec, nil
}

// sseEvent is one dispatched server-sent event.
type sseEvent struct {
	id    string
	event string
	data  []byte
}

// readEvents parses a text/event-stream (the WHATWG rules: fields up to the
// first colon, one optional space after it, data lines joined with "\n",
// comment lines ignored, an event dispatched on a blank line) and calls fn
// for each event until fn says stop or returns an error. A read error ends
// it with that error; a clean end of stream returns nil. Lines are read
// whole whatever their length, since one output line of a job can be long.
func readEvents(r io.Reader, fn func(sseEvent) (stop bool, err error)) error {
	br := bufio.NewReader(r)
	var ev sseEvent
	var data bytes.Buffer
	hasData := false
	for {
		line, err := br.ReadString('\n')
		if err != nil && (err != io.EOF || line == "") {
			if err == io.EOF {
				return nil // an unfinished last event is dropped, as the standard says
			}
			return err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			if hasData {
				ev.data = bytes.TrimSuffix(data.Bytes(), []byte("\n"))
				if ev.event == "" {
					ev.event = "message"
				}
				stop, ferr := fn(ev)
				if ferr != nil || stop {
					return ferr
				}
			}
			ev, hasData = sseEvent{}, false
			data.Reset()
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // a comment, such as the server's keep-alive
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "event":
			ev.event = value
		case "data":
			data.WriteString(value)
			data.WriteByte('\n')
			hasData = true
		case "id":
			if !strings.ContainsRune(value, 0) {
				ev.id = value
			}
		}
		if err == io.EOF {
			return nil
		}
	}
}
