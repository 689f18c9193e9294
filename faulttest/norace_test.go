//go:build !race

package faulttest

// raceEnabled: the test binary runs with -race, so the servers are built with it too.
const raceEnabled = false
