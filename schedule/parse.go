package schedule

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Error is a schedule expression or time zone that cannot be used. Field says
// which of the two inputs is wrong, so an API can point its problem at it.
type Error struct {
	Field  string // "schedule" or "timezone"
	Value  string // the input as given
	Reason string // what is wrong and how to fix it
}

func (e *Error) Error() string { return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Reason) }

// Parse reads a cron expression, descriptor or "@every DURATION" in the IANA
// zone timezone ("UTC" when empty). A non-nil error is an *Error.
func Parse(expr, timezone string) (*Schedule, error) {
	s, reason := parseExpr(expr)
	if reason != "" {
		return nil, &Error{Field: "schedule", Value: expr, Reason: reason}
	}
	if s.loc, s.zone, reason = loadZone(timezone); reason != "" {
		return nil, &Error{Field: "timezone", Value: timezone, Reason: reason}
	}
	return s, nil
}

// descriptors are the five-field equivalents of the named schedules (as
// robfig/cron defines them), parsed like any expression so that the
// fixed-time rule applies to them too: @hourly follows elapsed time.
var descriptors = map[string]string{
	"@yearly":  "0 0 1 1 *",
	"@monthly": "0 0 1 * *",
	"@weekly":  "0 0 * * 0",
	"@daily":   "0 0 * * *",
	"@hourly":  "0 * * * *",
}

var aliases = map[string]string{"@annually": "@yearly", "@midnight": "@daily"}

func parseExpr(expr string) (*Schedule, string) {
	words := strings.Fields(expr)
	switch {
	case len(words) == 0:
		return nil, `is empty; give five cron fields like "*/15 * * * *", a descriptor like "@daily", or "@every 10m"`
	case strings.HasPrefix(words[0], "@"):
		return parseDescriptor(words)
	case strings.Contains(words[0], "="):
		_, zone, _ := strings.Cut(words[0], "=")
		return nil, fmt.Sprintf("a zone prefix is not read here; remove %q and set timezone to %q", words[0], zone)
	}
	return parseFields(words, strings.ToUpper(strings.Join(words, " ")))
}

func parseDescriptor(words []string) (*Schedule, string) {
	name := strings.ToLower(words[0])
	if name == "@every" {
		return parseEvery(words[1:])
	}
	if canonical, ok := aliases[name]; ok {
		name = canonical
	}
	fields, ok := descriptors[name]
	switch {
	case !ok:
		return nil, fmt.Sprintf("unknown descriptor %s; use @yearly, @monthly, @weekly, @daily, @hourly or @every followed by a duration", words[0])
	case len(words) > 1:
		return nil, fmt.Sprintf("%s takes no argument; remove %q", name, strings.Join(words[1:], " "))
	}
	return parseFields(strings.Fields(fields), name)
}

// parseEvery reads the duration with time.ParseDuration rather than through
// robfig/cron, which silently rounds what is below one second.
func parseEvery(args []string) (*Schedule, string) {
	if len(args) != 1 {
		return nil, `@every takes one duration, e.g. "@every 10m" or "@every 1h30m"`
	}
	d, err := time.ParseDuration(strings.ToLower(args[0])) // Go's units are lower case
	switch {
	case err != nil:
		return nil, fmt.Sprintf("%q is not a duration; write it like 30s, 10m or 1h30m", args[0])
	case d < time.Second:
		return nil, fmt.Sprintf("@every %s is shorter than the minimum, 1s", args[0])
	case d%time.Second != 0:
		return nil, fmt.Sprintf("@every %s is not a whole number of seconds; use e.g. %s", args[0], d.Round(time.Second))
	}
	return &Schedule{expr: "@every " + shortDuration(d), every: d}, ""
}

// shortDuration drops the zero units that time.Duration.String writes:
// "10m" rather than "10m0s", "1h" rather than "1h0m0s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

var fieldParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

func parseFields(fields []string, expr string) (*Schedule, string) {
	if len(fields) != 5 {
		reason := fmt.Sprintf(`has %d fields, want 5 (minute hour day-of-month month day-of-week), e.g. "*/15 * * * *"`, len(fields))
		if len(fields) == 6 {
			reason += "; seconds are not supported, use @every for schedules under a minute"
		}
		return nil, reason
	}
	for i, text := range fields {
		if reason := cronFields[i].check(i, text); reason != "" {
			return nil, cronFields[i].name + " field: " + reason
		}
	}
	parsed, err := fieldParser.Parse(strings.Join(fields, " "))
	if err != nil {
		return nil, err.Error() // each field passed alone, so this is not expected
	}
	spec := parsed.(*cron.SpecSchedule)
	spec.Location = time.UTC // matched against wall-clock values; see nextWall
	if spec.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, "never fires: none of the months given has that day; check the day-of-month and month fields"
	}
	starred := func(f string) bool { return strings.HasPrefix(f, "*") || strings.HasPrefix(f, "?") }
	return &Schedule{expr: expr, spec: spec, fixedTime: !starred(fields[0]) && !starred(fields[1])}, ""
}

// field is one of the five cron fields, with robfig/cron's bounds.
type field struct {
	name     string
	min, max int
	names    string // the names it takes besides numbers
}

var cronFields = [5]field{
	{"minute", 0, 59, ""},
	{"hour", 0, 23, ""},
	{"day-of-month", 1, 31, ""},
	{"month", 1, 12, "JAN-DEC"},
	{"day-of-week", 0, 6, "SUN-SAT"},
}

// robfig/cron's errors (v3.0.1, whose text has not changed since 2019) do not
// name the field and speak of its parser's internals; check rewrites the
// common ones. The tests hold the rewritten text.
var (
	outOfRange = regexp.MustCompile(`\((\d+)\) (?:below minimum|above maximum)`)
	backwards  = regexp.MustCompile(`beginning of range \((\d+)\) beyond end of range \((\d+)\)`)
)

// check says what is wrong with text as field number i, or "" when nothing is.
// robfig/cron decides; check only adds the rule of Vixie cron that a step
// must not exceed the field's range ("*/61" is a typo, not minute 0).
func (f field) check(i int, text string) string {
	probe := []string{"*", "*", "*", "*", "*"}
	probe[i] = text
	_, err := fieldParser.Parse(strings.Join(probe, " "))
	if err == nil {
		for _, item := range strings.Split(text, ",") {
			if _, step, ok := strings.Cut(item, "/"); ok {
				if n, _ := strconv.Atoi(step); n > f.max {
					return f.outOfRange(step)
				}
			}
		}
		return ""
	}
	msg := err.Error()
	if m := outOfRange.FindStringSubmatch(msg); m != nil {
		return f.outOfRange(m[1])
	}
	if m := backwards.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("range %s-%s starts after it ends; write the low end first (%[2]s-%[1]s), or list both parts of a range that wraps (%[1]s-%[3]d,%[4]d-%[2]s)", m[1], m[2], f.max, f.min)
	}
	if strings.Contains(msg, "step of range should be a positive number") {
		return fmt.Sprintf("%q has a step of 0; a step must be at least 1", text)
	}
	names := ""
	if f.names != "" {
		names = " or a name " + f.names
	}
	return fmt.Sprintf("%q is not valid; use a number %d-%d%s, a range like 1-5, a step like */5, or a list like 1,15", text, f.min, f.max, names)
}

func (f field) outOfRange(n string) string {
	reason := fmt.Sprintf("%s is out of range %d-%d", n, f.min, f.max)
	if f.name == "day-of-week" && n == "7" {
		reason += "; write 0 or SUN for Sunday"
	}
	return reason
}
