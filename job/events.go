package job

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// Event is one entry of a job's ordered event sequence, as $stream sends it.
type Event struct {
	// ID increases by one with every event of the job; SSE clients resume
	// after it with Last-Event-ID.
	ID int64
	// Kind is "status" (Data is the whole Record) or "log" (Data is a LogLine).
	Kind string
	Data json.RawMessage
	// Status is the job status a status event carries.
	Status Status
}

// LogLine is the data of a log event.
type LogLine struct {
	Stream string `json:"stream"`
	Line   string `json:"line"`
}

// EventsAfter returns the job's stored events with an id greater than after,
// in order. A log row holds a chunk of lines: line i of a chunk ending at seq
// with count lines has id seq-count+1+i.
func (s *Scheduler) EventsAfter(ctx context.Context, jobID string, after int64) ([]Event, error) {
	rows, err := s.db.Query(ctx, s.q.EventsAfter, jobID, after)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var seq int64
		var count int
		var kind, data string
		if err := rows.Scan(&seq, &kind, &count, &data); err != nil {
			return nil, err
		}
		if kind != "log" {
			out = append(out, Event{ID: seq, Kind: kind, Data: json.RawMessage(data), Status: recordStatus(data)})
			continue
		}
		var lines []json.RawMessage
		if err := json.Unmarshal([]byte(data), &lines); err != nil {
			return nil, fmt.Errorf("job %s event %d: %w", jobID, seq, err)
		}
		first := seq - int64(len(lines)) + 1
		for i, l := range lines {
			if id := first + int64(i); id > after {
				out = append(out, Event{ID: id, Kind: "log", Data: l})
			}
		}
	}
	return out, rows.Err()
}

// recordStatus is the status of a status event's record. The record is
// encoded by this package, fields in Record's order, and the fields before
// Status are strings, in which a quote is escaped: the first `"status":"`
// is Status itself. Finding it beats decoding the whole record, which every
// stream read did for every status event.
func recordStatus(data string) Status {
	const key = `"status":"`
	if i := strings.Index(data, key); i >= 0 {
		rest := data[i+len(key):]
		if j := strings.IndexByte(rest, '"'); j >= 0 {
			return Status(rest[:j])
		}
	}
	var st struct {
		Status Status `json:"status"`
	}
	json.Unmarshal([]byte(data), &st)
	return st.Status
}

// Logs returns the captured output lines of a job in the order received;
// stream filters to "stdout" or "stderr" when not empty. What is kept is
// bounded by the output limit (the oldest lines go first).
func (s *Scheduler) Logs(ctx context.Context, jobID, stream string) ([]LogLine, error) {
	rows, err := s.db.Query(ctx, s.q.LogEvents, jobID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []LogLine
	for rows.Next() {
		var data string
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		var lines []LogLine
		if err := json.Unmarshal([]byte(data), &lines); err != nil {
			return nil, err
		}
		for _, l := range lines {
			if stream == "" || l.Stream == stream {
				out = append(out, l)
			}
		}
	}
	return out, rows.Err()
}
