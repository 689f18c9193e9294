package schedule

import (
	"math"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule is a parsed schedule in its time zone. It holds no clock and is
// never changed after Parse, so one value is safe to share between goroutines.
type Schedule struct {
	expr string // normalized, as String returns it
	zone string
	loc  *time.Location

	// Exactly one of spec and every is set.
	spec  *cron.SpecSchedule // matched against wall-clock values in UTC
	every time.Duration      // whole seconds, at least one
	phase int64              // @every: slots are phase + k*every, in Unix milliseconds (see From)

	// fixedTime is true when neither the minute nor the hour field starts
	// with "*" (the rule of Vixie and ISC cron): such a schedule names clock
	// times, so a time lost in a spring-forward gap fires after the gap and a
	// time repeated by a fall-back fires once. Other schedules follow elapsed
	// time. See the package comment.
	fixedTime bool
}

// String is the normalized expression: fields separated by one space, names
// in upper case, descriptors in their canonical spelling ("@annually" is
// "@yearly", "@midnight" is "@daily", "@every 90m" is "@every 1h30m").
func (s *Schedule) String() string { return s.expr }

// Zone is the IANA name of the zone the schedule is read in ("UTC" by default).
func (s *Schedule) Zone() string { return s.zone }

// From anchors an "@every" schedule at a time: its slots are that time
// (to the millisecond) plus whole multiples of the duration, so "@every 10m"
// set at 12:03:17.250 fires at 12:13:17.250, 12:23:17.250, and so on. The engine anchors a
// task's schedule at when it was set, which also spreads many tasks with the
// same interval over it instead of firing them all at one instant. Without
// From, slots are multiples of the duration since the Unix epoch. Cron
// schedules are returned unchanged: their slots are clock times.
func (s *Schedule) From(anchor time.Time) *Schedule {
	if s.spec != nil {
		return s
	}
	c := *s
	step := s.every.Milliseconds()
	c.phase = anchor.UnixMilli() - floorDiv(anchor.UnixMilli(), step)*step
	return &c
}

// Next is the first slot strictly after after, in UTC.
func (s *Schedule) Next(after time.Time) time.Time {
	if s.spec == nil {
		step := s.every.Milliseconds()
		k := floorDiv(after.UnixMilli()-s.phase, step) + 1
		return time.UnixMilli(k*step + s.phase).UTC()
	}
	return s.nextWall(after.In(s.loc))
}

// NextN is the next n slots after after, in UTC and in order.
func (s *Schedule) NextN(after time.Time, n int) []time.Time {
	var slots []time.Time
	t := after
	for range n {
		t = s.Next(t)
		slots = append(slots, t)
	}
	return slots
}

// Missed is the slots in (from, to] in order, at most limit of them: the
// latest ones when there are more. It is what catch-up after downtime needs:
// the work grows with limit, not with the length of the downtime.
func (s *Schedule) Missed(from, to time.Time, limit int) []time.Time {
	if limit <= 0 || !to.After(from) {
		return nil
	}
	if s.spec == nil {
		step := s.every.Milliseconds()
		first, last := floorDiv(from.UnixMilli()-s.phase, step)+1, floorDiv(to.UnixMilli()-s.phase, step)
		var slots []time.Time
		for k := max(first, last-int64(limit)+1); k <= last; k++ {
			slots = append(slots, time.UnixMilli(k*step+s.phase).UTC())
		}
		return slots
	}
	// Cron slots have no closed form: look back from to over a window that
	// doubles until it holds limit slots or reaches from.
	for span := time.Hour; ; span *= 2 {
		start, whole := to.Add(-span), false
		if span >= to.Sub(from) || span > math.MaxInt64/4 {
			start, whole = from, true
		}
		var slots []time.Time
		for t := s.Next(start); !t.After(to); t = s.Next(t) {
			slots = append(slots, t)
		}
		if len(slots) >= limit || whole {
			return slots[len(slots)-min(limit, len(slots)):]
		}
	}
}

// nextWall finds the first slot after t by walking the zone's periods of
// constant UTC offset. Within one period wall time and UTC differ by a
// constant, so robfig/cron's matcher, run on wall-clock values in UTC (where
// no day is 23 or 25 hours long), finds the next matching wall time; the
// period boundaries are where the daylight-saving rules apply.
func (s *Schedule) nextWall(t time.Time) time.Time {
	_, off := t.Zone()
	cursor := wallClock(t, off)
	if s.fixedTime {
		// Just after a fall-back, the wall times up to where the clock
		// stood when it went back had their first occurrence before it.
		if start, _ := t.ZoneBounds(); !start.IsZero() {
			_, before := start.Add(-time.Nanosecond).In(s.loc).Zone()
			cursor = later(cursor, wallClock(start, before).Add(-time.Nanosecond))
		}
	}
	for {
		w := s.spec.Next(cursor)
		if w.IsZero() {
			// robfig/cron looks five years ahead, and the next 29 February
			// can be eight years away (2096 to 2104). Parse refused the
			// schedules that never fire, so a second look finds the slot.
			w = s.spec.Next(cursor.AddDate(4, 0, 0))
		}
		at := w.Add(-seconds(off))
		_, end := t.ZoneBounds()
		if end.IsZero() || at.Before(end) {
			return at.UTC()
		}
		// w lies past this period: move into the next one.
		t = end.In(s.loc)
		_, next := t.Zone()
		resumed := wallClock(end, next) // the clock right after the change
		switch {
		case next > off && s.fixedTime && w.Before(resumed):
			return end.UTC() // w is in the gap: fire once at its end
		case next > off || !s.fixedTime:
			// After a gap, go on from the clock after it. After a
			// fall-back, elapsed-time schedules fire the repeated wall
			// times again; fixed-time ones keep the cursor and skip them.
			cursor = resumed.Add(-time.Nanosecond)
		}
		off = next
	}
}

// wallClock is the wall clock of instant t at UTC offset off, as a UTC time
// whose fields read the same.
func wallClock(t time.Time, off int) time.Time { return t.UTC().Add(seconds(off)) }

func seconds(n int) time.Duration { return time.Duration(n) * time.Second }

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
