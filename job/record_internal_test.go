package job

import (
	"encoding/json"
	"testing"
)

// TestRecordStatusMatchesDecoding: the quick status read of a status event
// agrees with decoding the record, also when a string before the status or
// a params key holds the same text.
func TestRecordStatusMatchesDecoding(t *testing.T) {
	for _, r := range []Record{
		{ID: "a", Status: Running},
		{ID: `x"status":"completed`, Command: `echo "status":"failed"`, Status: Pending},
		{ID: "b", Status: Canceled, Params: map[string]any{"status": "completed"}},
	} {
		data, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		if got := recordStatus(string(data)); got != r.Status {
			t.Fatalf("%s: got %q, want %q", data, got, r.Status)
		}
	}
}
