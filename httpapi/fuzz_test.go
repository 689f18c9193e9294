package httpapi

import (
	"strconv"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"

	"github.com/servicekit/servicekit/internal/ids"
)

// FuzzLastEventID: any header value either parses to the number it spells
// or is refused with a 400 problem; nothing panics.
func FuzzLastEventID(f *testing.F) {
	for _, s := range []string{"", "0", "17", " 5 ", "-1", "abc", "99999999999999999999", "1e3", "0x10", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		n, err := parseLastEventID(v)
		if err != nil {
			if p, ok := err.(*Problem); !ok || p.Status != 400 {
				t.Fatalf("%q: %v is not a 400 problem", v, err)
			}
			return
		}
		if n < 0 {
			t.Fatalf("%q parsed to negative %d", v, n)
		}
		if tv := strings.TrimSpace(v); tv != "" {
			if want, err := strconv.ParseInt(tv, 10, 64); err != nil || want != n {
				t.Fatalf("%q parsed to %d", v, n)
			}
		} else if n != 0 {
			t.Fatalf("%q parsed to %d", v, n)
		}
	})
}

// FuzzPathID: checkID accepts exactly the strings that are canonical
// ULIDs (and they round-trip), and refuses everything else with invalid-ulid.
func FuzzPathID(f *testing.F) {
	for _, s := range []string{ids.New(), "01ARZ3NDEKTSV4RRFFQ69G5FAV", "01arz3ndektsv4rrffq69g5fav", "8ZZZZZZZZZZZZZZZZZZZZZZZZZ",
		"7ZZZZZZZZZZZZZZZZZZZZZZZZZ", "", "not-a-ulid", "01ARZ3NDEKTSV4RRFFQ69G5FA", "01ARZ3NDEKTSV4RRFFQ69G5FAVX", "01ARZ3NDEKTSV4RRFFQ69G5FAU"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := checkID("id", s)
		_, perr := ulid.ParseStrict(s)
		if (err == nil) != (perr == nil && len(s) == ulid.EncodedSize) {
			t.Fatalf("%q: checkID %v, ParseStrict %v", s, err, perr)
		}
		if err != nil {
			if p := err.(*Problem); p.Status != 400 || p.Type != "urn:servicekit:error:invalid-ulid" {
				t.Fatalf("%q: %+v", s, p)
			}
		}
	})
}
