package schedule_test

import (
	"fmt"
	"time"

	"github.com/servicekit/servicekit/schedule"
)

// A daily time that the spring-forward change skips fires once, when the
// clocks have moved on; a bad expression or zone says what to fix.
func Example() {
	s, err := schedule.Parse("30 2 * * *", "America/New_York")
	if err != nil {
		panic(err)
	}
	ny, _ := time.LoadLocation(s.Zone())
	// On 8 March 2026 New York's clocks jump from 02:00 to 03:00.
	for _, slot := range s.NextN(time.Date(2026, 3, 7, 0, 0, 0, 0, time.UTC), 3) {
		fmt.Println(slot.Format(time.RFC3339), "=", slot.In(ny).Format("Mon 15:04 MST"))
	}

	every, _ := schedule.Parse("@every 10m", "")
	fmt.Println(every, every.Next(time.Date(2026, 3, 7, 12, 34, 56, 0, time.UTC)).Format(time.TimeOnly))

	_, err = schedule.Parse("*/61 * * * *", "")
	fmt.Println(err)
	_, err = schedule.Parse("@daily", "Europe/Olso")
	fmt.Println(err)
	// Output:
	// 2026-03-07T07:30:00Z = Sat 02:30 EST
	// 2026-03-08T07:00:00Z = Sun 03:00 EDT
	// 2026-03-09T06:30:00Z = Mon 02:30 EDT
	// @every 10m 12:40:00
	// schedule "*/61 * * * *": minute field: 61 is out of range 0-59
	// timezone "Europe/Olso": unknown IANA time zone (did you mean Europe/Oslo?)
}
