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
	if name == "" {
		name = "UTC"
	}
	if name == "Local" {
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
// likely typo. Case and spaces do not count ("new york" is America/New_York),
// and a name without a slash is also held against each zone's city.
func nearestZone(typed string) string {
	key := strings.ToLower(strings.ReplaceAll(typed, " ", "_"))
	best, bestDist := "", max(2, len(key)/4)+1
	for _, zone := range strings.Fields(zoneNames) {
		name := strings.ToLower(zone)
		d := edlib.OSADamerauLevenshteinDistance(key, name)
		if !strings.Contains(key, "/") {
			d = min(d, edlib.OSADamerauLevenshteinDistance(key, name[strings.LastIndex(name, "/")+1:]))
		}
		if d < bestDist {
			best, bestDist = zone, d
		}
	}
	return best
}
