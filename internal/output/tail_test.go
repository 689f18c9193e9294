package output

import (
	"bytes"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestTail(t *testing.T) {
	tests := []struct {
		name      string
		limit     int
		writes    []string
		want      string
		truncated bool
	}{
		{"empty", 5, nil, "", false},
		{"under limit", 5, []string{"ab", "c"}, "abc", false},
		{"exactly limit", 5, []string{"abc", "de"}, "abcde", false},
		{"wrap once", 5, []string{"abc", "def"}, "bcdef", true},
		{"wrap many small", 5, []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"}, "hijkl", true},
		{"wrap across end", 5, []string{"abcd", "efg", "hij"}, "fghij", true},
		{"single large", 5, []string{"abcdefghij"}, "fghij", true},
		{"large after small", 5, []string{"xy", "abcdefghij", "k"}, "ghijk", true},
		{"exact limit write after wrap", 5, []string{"abcdefg", "12345"}, "12345", true},
		{"empty writes", 5, []string{"", "ab", ""}, "ab", false},
		{"zero limit", 0, []string{"abc"}, "", true},
		{"negative limit", -3, []string{"abc"}, "", true},
		{"zero limit nothing written", 0, nil, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tail := NewTail(tt.limit)
			var total int64
			for _, w := range tt.writes {
				n, err := tail.Write([]byte(w))
				if n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
				total += int64(len(w))
			}
			if got := tail.String(); got != tt.want {
				t.Errorf("String = %q, want %q", got, tt.want)
			}
			if got := tail.Truncated(); got != tt.truncated {
				t.Errorf("Truncated = %v, want %v", got, tt.truncated)
			}
			if got := tail.Total(); got != total {
				t.Errorf("Total = %d, want %d", got, total)
			}
		})
	}
}

// TestTailRandom compares Tail with the obvious implementation (keep
// everything, slice the end) over random write sizes around the limit.
func TestTailRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, limit := range []int{1, 7, 512, 4096} {
		tail := NewTail(limit)
		var all []byte
		for i := range 2000 {
			p := make([]byte, rng.IntN(2*limit+2))
			for j := range p {
				p[j] = byte('a' + (i+j)%26)
			}
			tail.Write(p)
			all = append(all, p...)
			want := all[max(0, len(all)-limit):]
			if got := tail.Bytes(); !bytes.Equal(got, want) {
				t.Fatalf("limit %d write %d: got %q, want %q", limit, i, got, want)
			}
		}
		if cap(tail.buf) > limit {
			t.Errorf("limit %d: buffer capacity %d", limit, cap(tail.buf))
		}
	}
}

// TestTail100MB checks the memory bound: 100 MB through a 1 MiB tail keeps
// exactly the last 1 MiB and never allocates a larger buffer.
func TestTail100MB(t *testing.T) {
	const limit = 1 << 20
	const total = 100_000_000
	tail := NewTail(limit)
	chunk := make([]byte, 32<<10+3) // odd size so writes straddle the wrap point
	var written int
	var counter byte
	for written < total {
		n := min(len(chunk), total-written)
		for i := range n {
			chunk[i] = counter
			counter++
		}
		tail.Write(chunk[:n])
		written += n
	}
	got := tail.Bytes()
	if len(got) != limit {
		t.Fatalf("retained %d bytes, want %d", len(got), limit)
	}
	if !tail.Truncated() {
		t.Error("Truncated = false after 100 MB")
	}
	if tail.Total() != total {
		t.Errorf("Total = %d, want %d", tail.Total(), total)
	}
	if cap(tail.buf) != limit {
		t.Errorf("buffer capacity %d, want %d", cap(tail.buf), limit)
	}
	// The byte at stream offset i is byte(i); check the retained ones are the last.
	for i, b := range got {
		if want := byte(total - limit + i); b != want {
			t.Fatalf("byte %d = %d, want %d", i, b, want)
		}
	}
}

func TestTailConcurrent(t *testing.T) {
	tail := NewTail(100)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				tail.Write([]byte("0123456789"))
				_ = tail.String()
			}
		})
	}
	wg.Wait()
	if tail.Total() != 8*1000*10 {
		t.Errorf("Total = %d", tail.Total())
	}
	// Writes are atomic, so the tail is whole copies of the 10-byte write.
	if got := tail.String(); got != strings.Repeat("0123456789", 10) {
		t.Errorf("tail = %q", got)
	}
}

var _ io.Writer = (*Tail)(nil)

func BenchmarkTail(b *testing.B) {
	for _, size := range []int{64, 32 << 10} {
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) {
			tail := NewTail(1 << 20)
			p := make([]byte, size)
			b.SetBytes(int64(size))
			for b.Loop() {
				tail.Write(p)
			}
		})
	}
}
