package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"
)

// readEvents parses server-sent events from r and calls fn with each
// event's name and data until fn returns false or r ends. data is only
// valid during the call.
func readEvents(r io.Reader, fn func(event string, data []byte) bool) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var event []byte
	var data []byte
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) { // a line longer than the buffer: gather it
			long := slices.Clone(line)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if len(event) > 0 || len(data) > 0 {
				if !fn(string(event), data) {
					return nil
				}
			}
			event, data = event[:0], data[:0]
		case bytes.HasPrefix(line, []byte("event:")):
			event = append(event[:0], bytes.TrimSpace(line[len("event:"):])...)
		case bytes.HasPrefix(line, []byte("data:")):
			data = append(data, bytes.TrimPrefix(line[len("data:"):], []byte(" "))...)
		}
	}
}

// terminal reports whether a status event's data is a terminal status.
func terminal(data []byte) (string, bool) {
	var st struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(data, &st) != nil {
		return "", false
	}
	switch st.Status {
	case "completed", "failed", "canceled", "deleted":
		return st.Status, true
	}
	return st.Status, false
}

// openStream starts GET $stream of a job with the given client.
func openStream(ctx context.Context, hc *http.Client, base, jobID string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/jobs/"+jobID+"/$stream", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	res, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		res.Body.Close()
		return nil, fmt.Errorf("GET $stream of %s: HTTP %d: %s", jobID, res.StatusCode, bytes.TrimSpace(b))
	}
	return res, nil
}

// followTimes follows a job's stream from its first event and returns when
// it saw the running status and the terminal one, measured from since.
func followTimes(ctx context.Context, s *server, jobID string, since time.Time) (running, done time.Duration, err error) {
	res, err := openStream(ctx, s.http, s.base, jobID)
	if err != nil {
		return 0, 0, err
	}
	defer res.Body.Close()
	err = readEvents(res.Body, func(event string, data []byte) bool {
		if event != "status" {
			return true
		}
		st, end := terminal(data)
		if st == "running" && running == 0 {
			running = time.Since(since)
		}
		if end {
			done = time.Since(since)
			return false
		}
		return true
	})
	if err == nil && done == 0 {
		err = fmt.Errorf("stream of %s ended before a terminal status", jobID)
	}
	return running, done, err
}
