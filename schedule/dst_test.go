package schedule_test

import (
	"slices"
	"testing"
	"time"
)

// In 2026 New York springs forward on 8 March (02:00 EST to 03:00 EDT) and
// falls back on 1 November (02:00 EDT to 01:00 EST); Oslo springs forward on
// 29 March (02:00 CET to 03:00 CEST) and falls back on 25 October (03:00 CEST
// to 02:00 CET). The offsets in the wanted times tell the two occurrences of
// a repeated hour apart.
func TestDaylightSaving(t *testing.T) {
	for _, c := range []struct {
		name, expr, zone, after string
		want                    []string
	}{
		// Spring forward: a fixed time in the gap fires once, when it ends.
		{"NY gap, fixed", "30 2 * * *", "America/New_York", "2026-03-08T00:00:00-05:00", []string{
			"2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"}},
		{"NY gap, two fixed times", "0,30 2 * * *", "America/New_York", "2026-03-08T00:00:00-05:00", []string{
			"2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00", "2026-03-09T02:30:00-04:00"}},
		{"NY gap, hourly", "0 * * * *", "America/New_York", "2026-03-08T00:30:00-05:00", []string{
			"2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"}},
		{"NY gap, quarters", "*/15 * * * *", "America/New_York", "2026-03-08T01:30:00-05:00", []string{
			"2026-03-08T01:45:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:15:00-04:00"}},
		{"NY gap, quarters of hour 2", "*/15 2 * * *", "America/New_York", "2026-03-08T00:00:00-05:00", []string{
			"2026-03-09T02:00:00-04:00"}},
		{"NY gap, every 30m", "@every 30m", "America/New_York", "2026-03-08T01:00:00-05:00", []string{
			"2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00"}},
		{"Oslo gap, fixed", "30 2 * * *", "Europe/Oslo", "2026-03-29T00:00:00+01:00", []string{
			"2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"}},
		{"Oslo gap, hourly", "@hourly", "Europe/Oslo", "2026-03-29T00:30:00+01:00", []string{
			"2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"}},
		{"Oslo gap, quarters", "*/15 * * * *", "Europe/Oslo", "2026-03-29T01:30:00+01:00", []string{
			"2026-03-29T01:45:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:15:00+02:00"}},
		{"Oslo gap, every 30m", "@every 30m", "Europe/Oslo", "2026-03-29T01:00:00+01:00", []string{
			"2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00"}},

		// Fall back: a fixed time fires in its first occurrence only; the
		// others fire in both, as they are different real hours.
		{"NY repeat, fixed", "30 1 * * *", "America/New_York", "2026-11-01T00:00:00-04:00", []string{
			"2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"}},
		{"NY repeat, fixed, from the second occurrence", "45 1 * * *", "America/New_York", "2026-11-01T01:30:00-05:00", []string{
			"2026-11-02T01:45:00-05:00"}},
		{"NY repeat, hourly", "0 * * * *", "America/New_York", "2026-11-01T00:30:00-04:00", []string{
			"2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"}},
		{"NY repeat, quarters", "*/15 * * * *", "America/New_York", "2026-11-01T01:30:00-04:00", []string{
			"2026-11-01T01:45:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T01:15:00-05:00"}},
		{"NY repeat, every 30m", "@every 30m", "America/New_York", "2026-11-01T01:00:00-04:00", []string{
			"2026-11-01T01:30:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T01:30:00-05:00", "2026-11-01T02:00:00-05:00"}},
		{"Oslo repeat, fixed", "30 2 * * *", "Europe/Oslo", "2026-10-25T00:00:00+02:00", []string{
			"2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"}},
		{"Oslo repeat, hourly", "0 * * * *", "Europe/Oslo", "2026-10-25T01:30:00+02:00", []string{
			"2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"}},
		{"Oslo repeat, quarters", "*/15 * * * *", "Europe/Oslo", "2026-10-25T02:30:00+02:00", []string{
			"2026-10-25T02:45:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T02:15:00+01:00"}},
		{"Oslo repeat, every 30m", "@every 30m", "Europe/Oslo", "2026-10-25T02:00:00+02:00", []string{
			"2026-10-25T02:30:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T02:30:00+01:00"}},

		// Changes at midnight (Santiago: 24:00 to 01:00 on 6 September, 24:00
		// back to 23:00 on 4 April) and by half an hour (Lord Howe: 02:00 to
		// 02:30 on 4 October) follow the same rules.
		{"Santiago midnight gap, daily", "@daily", "America/Santiago", "2026-09-05T12:00:00-04:00", []string{
			"2026-09-06T01:00:00-03:00", "2026-09-07T00:00:00-03:00"}},
		{"Santiago repeat, fixed", "30 23 * * *", "America/Santiago", "2026-04-04T12:00:00-03:00", []string{
			"2026-04-04T23:30:00-03:00", "2026-04-05T23:30:00-04:00"}},
		{"Lord Howe half-hour gap, fixed", "15 2 * * *", "Australia/Lord_Howe", "2026-10-04T00:00:00+10:30", []string{
			"2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"}},
	} {
		s := mustParse(t, c.expr, c.zone)
		if got := local(t, s, s.NextN(at(t, c.after), len(c.want))); !slices.Equal(got, c.want) {
			t.Errorf("%s: %s after %s:\n got %v\nwant %v", c.name, c.expr, c.after, got, c.want)
		}
	}
}

// TestElapsedTimeSchedulesKeepTheirPace walks a whole year: quarter-hour,
// hourly and @every schedules never skip or repeat a slot of real time, in
// zones with hour-long changes and in Lord Howe, whose clocks move 30 minutes.
func TestElapsedTimeSchedulesKeepTheirPace(t *testing.T) {
	from, to := at(t, "2026-01-01T00:00:00Z"), at(t, "2027-01-01T00:00:00Z")
	for _, c := range []struct {
		expr, zone string
		pace       time.Duration
	}{
		{"*/15 * * * *", "America/New_York", 15 * time.Minute},
		{"*/15 * * * *", "Europe/Oslo", 15 * time.Minute},
		{"*/15 * * * *", "Australia/Lord_Howe", 15 * time.Minute},
		{"0 * * * *", "America/New_York", time.Hour},
		{"@hourly", "Europe/Oslo", time.Hour},
		{"@every 30m", "Europe/Oslo", 30 * time.Minute},
	} {
		s := mustParse(t, c.expr, c.zone)
		prev, n := s.Next(from), 1
		for v := s.Next(prev); !v.After(to); v = s.Next(v) {
			if v.Sub(prev) != c.pace {
				t.Errorf("%s in %s: %v follows %v, want %v later", c.expr, c.zone, v, prev, c.pace)
				break
			}
			prev, n = v, n+1
		}
		if want := int(to.Sub(from) / c.pace); n != want {
			t.Errorf("%s in %s: %d slots in (from, to], want %d", c.expr, c.zone, n, want)
		}
	}
}

// TestFixedTimesFireOncePerDay walks a whole year: a daily time in the hour
// that is skipped in spring, or repeated in autumn, fires once every day.
func TestFixedTimesFireOncePerDay(t *testing.T) {
	for _, c := range []struct{ expr, zone, clock, gapDay string }{
		{"30 2 * * *", "America/New_York", "02:30", "2026-03-08"}, // skipped in spring
		{"30 1 * * *", "America/New_York", "01:30", ""},           // repeated in autumn
		{"30 2 * * *", "Europe/Oslo", "02:30", "2026-03-29"},      // both
	} {
		s := mustParse(t, c.expr, c.zone)
		loc, _ := time.LoadLocation(c.zone)
		from := time.Date(2026, 1, 1, 0, 0, 0, 0, loc)
		days := map[string]bool{}
		for _, v := range s.Missed(from, from.AddDate(1, 0, 0), 1000) {
			day, clock := v.In(loc).Format(time.DateOnly), v.In(loc).Format("15:04")
			want := c.clock
			if day == c.gapDay {
				want = "03:00"
			}
			if days[day] || clock != want {
				t.Errorf("%s in %s: a slot at %s %s", c.expr, c.zone, day, clock)
			}
			days[day] = true
		}
		if len(days) != 365 {
			t.Errorf("%s in %s: fired on %d days of 2026, want 365", c.expr, c.zone, len(days))
		}
	}
}
