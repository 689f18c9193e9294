// Package schedule computes when a task's schedule fires: the next slots, and
// the slots missed while no node ran. It holds no clock and no state, so every
// node that reads the same schedule computes the same slot times, which is
// what lets the engine make a fire unique by (task, slot) without a leader.
//
// # Expressions
//
// A schedule is one of
//
//   - five cron fields, minute hour day-of-month month day-of-week, each a
//     number, a range (1-5), a step (*/15, 0-30/10), or a comma list of them;
//     months and weekdays also by name (JAN-DEC, SUN-SAT, any case). As in
//     Vixie cron, when both day fields are restricted a day matching either
//     one fires ("0 0 13 * FRI" is every 13th and every Friday);
//   - a descriptor: @yearly (@annually), @monthly, @weekly (Sunday),
//     @daily (@midnight), @hourly, which mean "0 0 1 1 *", "0 0 1 * *",
//     "0 0 * * 0", "0 0 * * *" and "0 * * * *";
//   - "@every DURATION", a Go duration of whole seconds, at least 1s. Its
//     slots are an anchor plus multiples of the duration, and its zone does
//     not matter. Schedule.From sets the anchor (the engine uses the time
//     the task's schedule was set, as robfig/cron and River count @every
//     from when it was added); without one the anchor is the Unix epoch, so
//     "@every 10m" fires at :00, :10, :20 of every hour.
//
// Cron fields are parsed by github.com/robfig/cron/v3: the cron parser most
// used in Go, with no dependencies, an API stable since v3 and the syntax
// above. The other candidate, go-co-op/gocron, builds on it and is an
// in-process runner on timers, not a computation one can call from any
// node. We use robfig/cron's parser and its field matcher,
// run on wall-clock values in UTC where every day has 24 hours; mapping wall
// time to real time across daylight-saving changes is done here, because
// robfig/cron's own Next skips a time that falls in a spring-forward gap and
// fires twice in a fall-back (its open pull request #541).
//
// # Daylight saving
//
// A cron schedule is read in its zone (an IANA name, UTC by default). When
// the clocks change, it follows the rule of Vixie and ISC cron, which splits
// schedules in two by their minute and hour fields:
//
//   - Fixed-time schedules, whose minute and hour fields both start with
//     something other than "*" or "?" ("30 2 * * *", "0 9 * * MON-FRI",
//     "0,30 8-17 * * *", @daily),
//     name times of day. A time that does not exist because the clocks
//     jumped forward fires once, at the first instant after the gap: on
//     8 March 2026 in America/New_York, "30 2 * * *" fires at 03:00 EDT.
//     A time that occurs twice because the clocks went back fires once, at
//     its first occurrence: on 1 November 2026 there, "30 1 * * *" fires at
//     01:30 EDT and not at 01:30 EST.
//   - Elapsed-time schedules, whose minute or hour field starts with "*"
//     ("*/15 * * * *", @hourly, "0 * * * *", "*/5 9-17 * * *"), fire at each
//     real instant whose local time matches, and nothing else. Wall times
//     in a gap do not exist and do not fire; those in a fall-back repeat fire
//     in both occurrences, since they are different hours of real time. So
//     "*/15 * * * *" fires every 15 real minutes all year, and @hourly once
//     every real hour: 24 times on most days, 23 and 25 on the change days.
//     (A step over hours that the gap interrupts is cut short: "0 */2 * * *"
//     goes from 00:00 EST to 04:00 EDT, three hours, as in cron.)
//
// "@every" schedules do not read the clock at all: every slot is the
// duration after the one before.
//
// Zones are loaded with time.LoadLocation; the package embeds time/tzdata, so
// a host without zone files still loads them, while a host with them uses its
// own (keep nodes on the same tzdata if a zone's rules have just changed).
// The zone "Local" is refused: it would mean a different zone on each node.
//
// # Errors
//
// Parse returns an *Error that names the input at fault and says in one line
// how to fix it:
//
//	schedule "*/61 * * * *": minute field: 61 is out of range 0-59
//	timezone "Europe/Olso": unknown IANA time zone (did you mean Europe/Oslo?)
package schedule
