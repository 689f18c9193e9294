package schedule_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/servicekit/servicekit/schedule"
)

func mustParse(t *testing.T, expr, zone string) *schedule.Schedule {
	t.Helper()
	s, err := schedule.Parse(expr, zone)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func at(t *testing.T, rfc3339 string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, rfc3339)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// local writes slots in the schedule's zone, so that a failure reads as
// wall-clock times with their offsets, and checks they are in UTC.
func local(t *testing.T, s *schedule.Schedule, slots []time.Time) []string {
	t.Helper()
	loc, err := time.LoadLocation(s.Zone())
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, v := range slots {
		if v.Location() != time.UTC {
			t.Errorf("slot %v is not in UTC", v)
		}
		out = append(out, v.In(loc).Format(time.RFC3339))
	}
	return out
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ expr, zone, field, want string }{
		{"", "", "schedule", `schedule "": is empty; give five cron fields like "*/15 * * * *", a descriptor like "@daily", or "@every 10m"`},
		{"* * *", "", "schedule", `schedule "* * *": has 3 fields, want 5 (minute hour day-of-month month day-of-week), e.g. "*/15 * * * *"`},
		{"0 * * * * *", "", "schedule", `schedule "0 * * * * *": has 6 fields, want 5 (minute hour day-of-month month day-of-week), e.g. "*/15 * * * *"; seconds are not supported, use @every for schedules under a minute`},
		{"*/61 * * * *", "", "schedule", `schedule "*/61 * * * *": minute field: 61 is out of range 0-59`},
		{"60 * * * *", "", "schedule", `schedule "60 * * * *": minute field: 60 is out of range 0-59`},
		{"0 24 * * *", "", "schedule", `schedule "0 24 * * *": hour field: 24 is out of range 0-23`},
		{"0 */25 * * *", "", "schedule", `schedule "0 */25 * * *": hour field: 25 is out of range 0-23`},
		{"0 0 0 * *", "", "schedule", `schedule "0 0 0 * *": day-of-month field: 0 is out of range 1-31`},
		{"0 0 * 13 *", "", "schedule", `schedule "0 0 * 13 *": month field: 13 is out of range 1-12`},
		{"0 0 * * 7", "", "schedule", `schedule "0 0 * * 7": day-of-week field: 7 is out of range 0-6; write 0 or SUN for Sunday`},
		{"0 0 * * MONDAY", "", "schedule", `schedule "0 0 * * MONDAY": day-of-week field: "MONDAY" is not valid; use a number 0-6 or a name SUN-SAT, a range like 1-5, a step like */5, or a list like 1,15`},
		{"0 0 * FOO *", "", "schedule", `schedule "0 0 * FOO *": month field: "FOO" is not valid; use a number 1-12 or a name JAN-DEC, a range like 1-5, a step like */5, or a list like 1,15`},
		{"x * * * *", "", "schedule", `schedule "x * * * *": minute field: "x" is not valid; use a number 0-59, a range like 1-5, a step like */5, or a list like 1,15`},
		{"0 22-2 * * *", "", "schedule", `schedule "0 22-2 * * *": hour field: range 22-2 starts after it ends; write the low end first (2-22), or list both parts of a range that wraps (22-23,0-2)`},
		{"*/0 * * * *", "", "schedule", `schedule "*/0 * * * *": minute field: "*/0" has a step of 0; a step must be at least 1`},
		{"0 0 30 2 *", "", "schedule", `schedule "0 0 30 2 *": never fires: none of the months given has that day; check the day-of-month and month fields`},
		{"CRON_TZ=Europe/Oslo 0 9 * * *", "", "schedule", `schedule "CRON_TZ=Europe/Oslo 0 9 * * *": a zone prefix is not read here; remove "CRON_TZ=Europe/Oslo" and set timezone to "Europe/Oslo"`},
		{"@reboot", "", "schedule", `schedule "@reboot": unknown descriptor @reboot; use @yearly, @monthly, @weekly, @daily, @hourly or @every followed by a duration`},
		{"@daily 9", "", "schedule", `schedule "@daily 9": @daily takes no argument; remove "9"`},
		{"@every", "", "schedule", `schedule "@every": @every takes one duration, e.g. "@every 10m" or "@every 1h30m"`},
		{"@every ten", "", "schedule", `schedule "@every ten": "ten" is not a duration; write it like 30s, 10m or 1h30m`},
		{"@every 500ms", "", "schedule", `schedule "@every 500ms": @every 500ms is shorter than the minimum, 1s`},
		{"@every -5m", "", "schedule", `schedule "@every -5m": @every -5m is shorter than the minimum, 1s`},
		{"@every 1.5s", "", "schedule", `schedule "@every 1.5s": @every 1.5s is not a whole number of seconds; use e.g. 2s`},
		{"@daily", "Europe/Olso", "timezone", `timezone "Europe/Olso": unknown IANA time zone (did you mean Europe/Oslo?)`},
		{"@daily", "europe/oslo", "timezone", `timezone "europe/oslo": unknown IANA time zone (did you mean Europe/Oslo?)`},
		{"@daily", "Oslo", "timezone", `timezone "Oslo": unknown IANA time zone (did you mean Europe/Oslo?)`},
		{"@daily", "New York", "timezone", `timezone "New York": unknown IANA time zone (did you mean America/New_York?)`},
		{"@daily", "Mars/Olympus_Mons", "timezone", `timezone "Mars/Olympus_Mons": unknown IANA time zone; give a name like "Europe/Oslo", "America/New_York" or "UTC"`},
		{"@daily", "utc", "timezone", `timezone "utc": unknown IANA time zone (did you mean UTC?)`},
		{"@daily", "Kiev", "timezone", `timezone "Kiev": unknown IANA time zone (did you mean Europe/Kiev?)`},
		{"@daily", "xyz", "timezone", `timezone "xyz": unknown IANA time zone; give a name like "Europe/Oslo", "America/New_York" or "UTC"`},
		{"@daily", "local", "timezone", `timezone "local": is the host's own zone, which can differ between nodes; give an IANA name like "Europe/Oslo" or "UTC"`},
		{"@daily", "Local", "timezone", `timezone "Local": is the host's own zone, which can differ between nodes; give an IANA name like "Europe/Oslo" or "UTC"`},
	} {
		s, err := schedule.Parse(c.expr, c.zone)
		var perr *schedule.Error
		if !errors.As(err, &perr) {
			t.Errorf("Parse(%q, %q) = %v, %v; want an *Error", c.expr, c.zone, s, err)
			continue
		}
		if err.Error() != c.want || perr.Field != c.field {
			t.Errorf("Parse(%q, %q):\n got %s (field %s)\nwant %s (field %s)", c.expr, c.zone, err, perr.Field, c.want, c.field)
		}
	}
}

func TestParseNormalizes(t *testing.T) {
	for _, c := range []struct{ expr, zone, want, wantZone string }{
		{" */15  *\t* * * ", "", "*/15 * * * *", "UTC"},
		{"0 9 * jan-mar mon-fri", "Europe/Oslo", "0 9 * JAN-MAR MON-FRI", "Europe/Oslo"},
		{"0 0 13 * ?", "", "0 0 13 * ?", "UTC"},
		{"@annually", "", "@yearly", "UTC"},
		{"@Midnight", "America/New_York", "@daily", "America/New_York"},
		{"@every 90m", "", "@every 1h30m", "UTC"},
		{"@EVERY 3600s", "", "@every 1h", "UTC"},
		{"@every 1m30s", "", "@every 1m30s", "UTC"},
		{"@every 1s", "", "@every 1s", "UTC"},
		{"@every 2H", "", "@every 2h", "UTC"},
		{"@hourly", " Europe/Oslo ", "@hourly", "Europe/Oslo"},
	} {
		s := mustParse(t, c.expr, c.zone)
		if s.String() != c.want || s.Zone() != c.wantZone {
			t.Errorf("Parse(%q, %q): String %q, Zone %q; want %q, %q", c.expr, c.zone, s.String(), s.Zone(), c.want, c.wantZone)
		}
	}
}

func TestDescriptors(t *testing.T) {
	after := at(t, "2026-05-15T10:20:00Z") // a Friday
	for _, c := range []struct{ expr, zone, want string }{
		{"@yearly", "", "2027-01-01T00:00:00Z"},
		{"@annually", "", "2027-01-01T00:00:00Z"},
		{"@monthly", "", "2026-06-01T00:00:00Z"},
		{"@weekly", "", "2026-05-17T00:00:00Z"},
		{"@daily", "", "2026-05-16T00:00:00Z"},
		{"@midnight", "", "2026-05-16T00:00:00Z"},
		{"@hourly", "", "2026-05-15T11:00:00Z"},
		{"@daily", "Europe/Oslo", "2026-05-16T00:00:00+02:00"},
		{"@weekly", "America/New_York", "2026-05-17T00:00:00-04:00"},
	} {
		s := mustParse(t, c.expr, c.zone)
		if got := local(t, s, []time.Time{s.Next(after)}); got[0] != c.want {
			t.Errorf("%s in %s: Next = %s, want %s", c.expr, s.Zone(), got[0], c.want)
		}
	}
}

func TestEveryIsAlignedToTheEpoch(t *testing.T) {
	oslo := mustParse(t, "@every 7m", "Europe/Oslo")
	utc := mustParse(t, "@every 7m", "")
	after := at(t, "2026-03-29T01:59:59.5+01:00") // also across Oslo's spring gap
	got, same := oslo.NextN(after, 50), utc.NextN(after, 50)
	if !slices.Equal(got, same) {
		t.Fatalf("the zone changed @every slots:\n%v\n%v", got, same)
	}
	for i, v := range got {
		if v.Unix()%420 != 0 || v.Nanosecond() != 0 {
			t.Fatalf("slot %v is not a multiple of 7m since the epoch", v)
		}
		if i > 0 && v.Sub(got[i-1]) != 7*time.Minute {
			t.Fatalf("slots %v and %v are not 7m apart", got[i-1], v)
		}
	}
	if first := got[0]; !first.After(after) || first.Sub(after) > 7*time.Minute {
		t.Fatalf("first slot %v is not the one right after %v", first, after)
	}
	if next := utc.Next(got[0]); next != got[1] {
		t.Errorf("Next(a slot) = %v, want the following slot %v", next, got[1])
	}

	secondly := mustParse(t, "@every 1s", "")
	for _, c := range []struct{ after, want string }{
		{"2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"},
		{"2026-01-01T00:00:00.999Z", "2026-01-01T00:00:01Z"},
		{"1969-12-31T23:59:58.5Z", "1969-12-31T23:59:59Z"},
	} {
		if got := secondly.Next(at(t, c.after)); !got.Equal(at(t, c.want)) {
			t.Errorf("@every 1s: Next(%s) = %v, want %s", c.after, got, c.want)
		}
	}
	if got := mustParse(t, "@every 10m", "").Next(at(t, "1969-12-31T23:55:00Z")); !got.Equal(time.Unix(0, 0)) {
		t.Errorf("@every 10m before the epoch: Next = %v, want the epoch", got)
	}
}

func TestNextNAcrossMonthAndYearEnds(t *testing.T) {
	for _, c := range []struct {
		expr, after string
		want        []string
	}{
		{"0 12 31 * *", "2026-11-01T00:00:00Z", []string{
			"2026-12-31T12:00:00Z", "2027-01-31T12:00:00Z", "2027-03-31T12:00:00Z", "2027-05-31T12:00:00Z",
		}},
		{"59 23 * * *", "2026-12-30T23:59:00Z", []string{
			"2026-12-31T23:59:00Z", "2027-01-01T23:59:00Z", "2027-01-02T23:59:00Z",
		}},
		{"0 0 29 2 *", "2026-01-01T00:00:00Z", []string{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}},
		{"0 0 1 */4 *", "2026-10-15T00:00:00Z", []string{
			"2027-01-01T00:00:00Z", "2027-05-01T00:00:00Z", "2027-09-01T00:00:00Z", "2028-01-01T00:00:00Z",
		}},
		{"0 0 13 * FRI", "2026-02-26T00:00:00Z", []string{ // either day field: Fridays and the 13th
			"2026-02-27T00:00:00Z", "2026-03-06T00:00:00Z", "2026-03-13T00:00:00Z", "2026-03-20T00:00:00Z",
		}},
		{"30 8 * * MON-FRI", "2026-12-31T09:00:00Z", []string{
			"2027-01-01T08:30:00Z", "2027-01-04T08:30:00Z", "2027-01-05T08:30:00Z",
		}},
	} {
		s := mustParse(t, c.expr, "")
		if got := local(t, s, s.NextN(at(t, c.after), len(c.want))); !slices.Equal(got, c.want) {
			t.Errorf("%s after %s:\n got %v\nwant %v", c.expr, c.after, got, c.want)
		}
	}
	// 2100 is not a leap year: the next 29 February is eight years on,
	// beyond the five years robfig/cron looks ahead.
	leap := mustParse(t, "0 0 29 2 *", "")
	if got := local(t, leap, leap.NextN(at(t, "2096-03-01T00:00:00Z"), 2)); !slices.Equal(got, []string{"2104-02-29T00:00:00Z", "2108-02-29T00:00:00Z"}) {
		t.Errorf("29 February after 2096: NextN = %v", got)
	}
	if got := mustParse(t, "@hourly", "").NextN(time.Now(), 0); len(got) != 0 {
		t.Errorf("NextN(_, 0) = %v, want none", got)
	}
}

func TestMissed(t *testing.T) {
	quarter := mustParse(t, "*/15 * * * *", "")
	from, to := at(t, "2026-06-01T10:00:00Z"), at(t, "2026-06-01T11:00:00Z")
	for _, c := range []struct {
		name     string
		from, to time.Time
		limit    int
		want     []string
	}{
		{"from is excluded, to included", from, to, 10, []string{
			"2026-06-01T10:15:00Z", "2026-06-01T10:30:00Z", "2026-06-01T10:45:00Z", "2026-06-01T11:00:00Z",
		}},
		{"the latest when over the limit", from, to, 2, []string{"2026-06-01T10:45:00Z", "2026-06-01T11:00:00Z"}},
		{"no limit, no slots", from, to, 0, []string{}},
		{"an empty window", to, to, 5, []string{}},
		{"a window backwards", to, from, 5, []string{}},
		{"a window between slots", from.Add(time.Minute), from.Add(14 * time.Minute), 5, []string{}},
	} {
		if got := local(t, quarter, quarter.Missed(c.from, c.to, c.limit)); !slices.Equal(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}

	// A long downtime costs what the limit asks for, not what the window holds.
	longAgo := at(t, "2016-06-01T10:00:00Z")
	for _, c := range []struct{ expr, want string }{
		{"@every 1s", "[2026-06-01T10:59:59Z 2026-06-01T11:00:00Z]"},
		{"* * * * *", "[2026-06-01T10:59:00Z 2026-06-01T11:00:00Z]"},
		{"0 3 29 2 *", "[2020-02-29T03:00:00Z 2024-02-29T03:00:00Z]"},
	} {
		s := mustParse(t, c.expr, "")
		if got := local(t, s, s.Missed(longAgo, to, 2)); "["+strings.Join(got, " ")+"]" != c.want {
			t.Errorf("%s over ten years: got %v, want %s", c.expr, got, c.want)
		}
	}

	// Every slot of a day, through a daylight-saving change: 100 quarters in
	// New York's 25-hour day, as many as Next finds one by one.
	ny := mustParse(t, "*/15 * * * *", "America/New_York")
	dayFrom, dayTo := at(t, "2026-11-01T00:00:00-04:00"), at(t, "2026-11-02T00:00:00-05:00")
	missed := ny.Missed(dayFrom, dayTo, 1000)
	if len(missed) != 100 || !slices.Equal(missed, ny.NextN(dayFrom, 100)) {
		t.Errorf("Missed over the fall-back day: %d slots, want the 100 NextN gives", len(missed))
	}
}

// TestEveryFromAnchor: an anchored @every counts from its anchor, to the
// millisecond, in Next and in Missed alike; cron schedules ignore the anchor.
func TestEveryFromAnchor(t *testing.T) {
	s, err := schedule.Parse("@every 10m", "")
	if err != nil {
		t.Fatal(err)
	}
	at := func(v string) time.Time {
		t.Helper()
		x, err := time.Parse(time.RFC3339, v)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	a := s.From(at("2026-03-07T12:03:17.9004Z"))
	if got := a.Next(at("2026-03-07T12:05:00Z")); !got.Equal(at("2026-03-07T12:13:17.9Z")) {
		t.Fatalf("Next: %v", got)
	}
	if got := a.Next(at("2026-03-07T12:13:17.9Z")); !got.Equal(at("2026-03-07T12:23:17.9Z")) {
		t.Fatalf("Next after a slot: %v", got)
	}
	if got := a.Next(at("2026-03-07T11:55:00Z")); !got.Equal(at("2026-03-07T12:03:17.9Z")) {
		t.Fatalf("Next before the anchor: %v", got)
	}
	missed := a.Missed(at("2026-03-07T12:13:17.9Z"), at("2026-03-07T13:00:00Z"), 3)
	want := []time.Time{at("2026-03-07T12:33:17.9Z"), at("2026-03-07T12:43:17.9Z"), at("2026-03-07T12:53:17.9Z")}
	if len(missed) != 3 || !missed[0].Equal(want[0]) || !missed[2].Equal(want[2]) {
		t.Fatalf("Missed: %v, want %v", missed, want)
	}
	if got := s.Next(at("2026-03-07T12:05:00Z")); !got.Equal(at("2026-03-07T12:10:00Z")) {
		t.Fatalf("unanchored Next: %v", got)
	}
	c, _ := schedule.Parse("0 9 * * *", "")
	if c.From(at("2026-03-07T12:03:17Z")) != c {
		t.Fatal("a cron schedule changed by From")
	}
}
