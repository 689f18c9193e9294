package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/servicekit/servicekit/bench"
)

// samples are latencies of one kind of request.
type samples []time.Duration

func (s samples) sorted() samples {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// p is the nearest-rank percentile.
func (s samples) p(pct float64) time.Duration { return bench.Percentile(s.sorted(), pct) }

// ms formats a duration in milliseconds with a precision that suits it.
func ms(d time.Duration) string {
	f := float64(d) / float64(time.Millisecond)
	switch {
	case f < 10:
		return strconv.FormatFloat(f, 'f', 2, 64) + " ms"
	case f < 100:
		return strconv.FormatFloat(f, 'f', 1, 64) + " ms"
	}
	return strconv.FormatFloat(f, 'f', 0, 64) + " ms"
}

func median(v []float64) float64 {
	c := slices.Clone(v)
	slices.Sort(c)
	if len(c) == 0 {
		return 0
	}
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}

// parseSizes reads a comma-separated list of counts or byte sizes:
// 1000, 100k, 1M (counts), 1MB, 10MB, 1GB (bytes, powers of 1000).
func parseSizes(s string) ([]int64, error) {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(strings.ToUpper(f))
		f = strings.TrimSuffix(f, "B")
		mult := int64(1)
		switch {
		case strings.HasSuffix(f, "K"):
			mult, f = 1000, strings.TrimSuffix(f, "K")
		case strings.HasSuffix(f, "M"):
			mult, f = 1000_000, strings.TrimSuffix(f, "M")
		case strings.HasSuffix(f, "G"):
			mult, f = 1000_000_000, strings.TrimSuffix(f, "G")
		}
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("size %q: want a positive number like 1000, 100k, 1M or 10MB", f)
		}
		out = append(out, n*mult)
	}
	return out, nil
}

// count formats a count the way the tables do: 1k, 100k, 1M.
func count(n int64) string {
	switch {
	case n >= 1000_000_000 && n%1000_000_000 == 0:
		return strconv.FormatInt(n/1000_000_000, 10) + "G"
	case n >= 1000_000 && n%1000_000 == 0:
		return strconv.FormatInt(n/1000_000, 10) + "M"
	case n >= 1000 && n%1000 == 0:
		return strconv.FormatInt(n/1000, 10) + "k"
	}
	return strconv.FormatInt(n, 10)
}
