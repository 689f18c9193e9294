package schedule

import (
	_ "embed"
	"strings"
	"time"
	_ "time/tzdata" // zones load on hosts without /usr/share/zoneinfo

	"github.com/hbollon/go-edlib"
)

// zoneNames is the list of zones in the Go toolchain's tzdata, one a line, for
// suggestions: the time package can load a zone but not list them.
// TestZoneListMatchesToolchain keeps it current.
//
//go:embed zones.txt
var zoneNames string

// loadZone loads the IANA zone name ("UTC" when empty), or says why it can't.
func loadZone(name string) (*time.Location, string, string) {
	name = strings.TrimSpace(name)
	if name == "" {
		name = "UTC"
	}
	if strings.EqualFold(name, "Local") {
		return nil, "", `is the host's own zone, which can differ between nodes; give an IANA name like "Europe/Oslo" or "UTC"`
	}
	loc, err := time.LoadLocation(name)
	if err == nil {
		return loc, name, ""
	}
	if near := nearestZone(name); near != "" {
		return nil, "", "unknown IANA time zone (did you mean " + near + "?)"
	}
	return nil, "", `unknown IANA time zone; give a name like "Europe/Oslo", "America/New_York" or "UTC"`
}

// nearestZone is the zone closest to typed, if it is close enough to be a
// likely typo: one edit in four letters (at least one), where swapping two
// letters is one edit and case and spaces do not count ("new york" is
// America/New_York). A name without a slash is also held against each zone's
// city ("Oslo" is Europe/Oslo), a little less close than a whole name, so
// "utc" is UTC rather than Etc/UTC.
func nearestZone(typed string) string {
	key := strings.ToLower(strings.ReplaceAll(typed, " ", "_"))
	best, bestScore := "", 2*(max(1, len(key)/4)+1) // score: twice the edits
	for _, zone := range strings.Fields(zoneNames) {
		name := strings.ToLower(zone)
		score := 2 * edlib.OSADamerauLevenshteinDistance(key, name)
		if !strings.Contains(key, "/") {
			city := name[strings.LastIndex(name, "/")+1:]
			score = min(score, 2*edlib.OSADamerauLevenshteinDistance(key, city)+1)
		}
		if score < bestScore {
			best, bestScore = zone, score
		}
	}
	return best
}
