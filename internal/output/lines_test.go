package output

import (
	"bytes"
	"io"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// collect runs writes through a Lines and returns the emitted lines.
func collect(maxLine int, writes []string, flush bool) []string {
	var got []string
	l := NewLines(maxLine, func(s string) { got = append(got, s) })
	for _, w := range writes {
		if n, err := l.Write([]byte(w)); n != len(w) || err != nil {
			panic("short write")
		}
	}
	if flush {
		l.Flush()
	}
	return got
}

func TestLinesSplit(t *testing.T) {
	tests := []struct {
		name    string
		maxLine int
		writes  []string
		flush   bool
		want    []string
	}{
		{"single", 0, []string{"hello\n"}, false, []string{"hello"}},
		{"several in one write", 0, []string{"a\nb\nc\n"}, false, []string{"a", "b", "c"}},
		{"crlf", 0, []string{"a\r\nb\r\n"}, false, []string{"a", "b"}},
		{"only one cr stripped", 0, []string{"a\r\r\n"}, false, []string{"a\r"}},
		{"cr in middle kept", 0, []string{"a\rb\n"}, false, []string{"a\rb"}},
		{"empty lines", 0, []string{"\n\n\r\n"}, false, []string{"", "", ""}},
		{"partial across writes", 0, []string{"hel", "lo\nwor", "ld\n"}, false, []string{"hello", "world"}},
		{"crlf split across writes", 0, []string{"a\r", "\nb\n"}, false, []string{"a", "b"}},
		{"byte by byte", 0, strings.Split("ab\ncd\n", ""), false, []string{"ab", "cd"}},
		{"partial kept without flush", 0, []string{"a\nrest"}, false, []string{"a"}},
		{"flush emits partial", 0, []string{"a\nrest"}, true, []string{"a", "rest"}},
		{"flush strips cr", 0, []string{"rest\r"}, true, []string{"rest"}},
		{"flush with nothing pending", 0, []string{"a\n"}, true, []string{"a"}},
		{"flush on empty", 0, nil, true, nil},
		{"exactly max", 4, []string{"abcd\n"}, false, []string{"abcd"}},
		{"exactly max with crlf", 4, []string{"abcd\r\n"}, false, []string{"abcd"}},
		{"long line pieces", 4, []string{"abcdefghij\n"}, false, []string{"abcd", "efgh", "ij"}},
		{"long line multiple of max", 4, []string{"abcdefgh\nx\n"}, false, []string{"abcd", "efgh", "x"}},
		{"long line multiple of max crlf", 4, []string{"abcdefgh\r\n"}, false, []string{"abcd", "efgh"}},
		{"long line across writes", 4, []string{"ab", "cdef", "g", "hi\n"}, false, []string{"abcd", "efgh", "i"}},
		{"long partial then flush", 4, []string{"abcdef"}, true, []string{"abcd", "ef"}},
		{"long piece emitted before newline", 4, []string{"abcdef"}, false, []string{"abcd"}},
		// "é" is 2 bytes, "€" 3: pieces are cut before a rune that does not fit.
		{"utf8 not split", 4, []string{"abc€d\n"}, false, []string{"abc", "€d"}},
		{"utf8 not split across writes", 5, []string{"ab", "cdé", "é\n"}, false, []string{"abcd", "éé"}},
		{"invalid utf8 replaced", 0, []string{"a\xffb\n"}, false, []string{"a\uFFFDb"}},
		{"tiny max with multibyte", 1, []string{"é\n"}, false, []string{"\uFFFD", "\uFFFD"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := collect(tt.maxLine, tt.writes, tt.flush)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestLinesChunkingInvariant writes the same text in every chunk size and
// checks the lines never depend on how the stream was chopped up.
func TestLinesChunkingInvariant(t *testing.T) {
	text := "first\r\n\nsecond line that is long\nthird€€€€\r\nunterminated"
	for _, maxLine := range []int{0, 3, 4, 7} {
		want := collect(maxLine, []string{text}, true)
		for size := 1; size <= len(text); size++ {
			var writes []string
			for s := text; len(s) > 0; {
				k := min(size, len(s))
				writes = append(writes, s[:k])
				s = s[k:]
			}
			if got := collect(maxLine, writes, true); !reflect.DeepEqual(got, want) {
				t.Fatalf("maxLine %d chunk %d: got %q, want %q", maxLine, size, got, want)
			}
		}
	}
}

func TestLinesBoundedAndValid(t *testing.T) {
	const maxLine = 1000
	// A 10 MB line of multi-byte runes without a newline.
	chunk := []byte(strings.Repeat("ab€", 333)) // 999+333 bytes, not a multiple of maxLine
	var total, pieces int
	l := NewLines(maxLine, func(s string) {
		if len(s) > maxLine {
			t.Fatalf("piece of %d bytes exceeds %d", len(s), maxLine)
		}
		if !utf8.ValidString(s) || strings.ContainsRune(s, utf8.RuneError) {
			t.Fatalf("piece split a rune: %q", s)
		}
		total += len(s)
		pieces++
	})
	written := 0
	for written < 10<<20 {
		l.Write(chunk)
		written += len(chunk)
	}
	l.Flush()
	if total != written {
		t.Errorf("emitted %d bytes, wrote %d", total, written)
	}
	if cap(l.buf) > maxLine {
		t.Errorf("buffer grew to %d, limit %d", cap(l.buf), maxLine)
	}
	if pieces < written/maxLine {
		t.Errorf("only %d pieces for %d bytes", pieces, written)
	}
}

var _ io.Writer = (*Lines)(nil)

func BenchmarkLines(b *testing.B) {
	var buf bytes.Buffer
	for buf.Len() < 1<<20 {
		buf.WriteString("2026-01-02T03:04:05Z INFO processing item 12345 of 99999\n")
	}
	data := buf.Bytes()
	n := 0
	l := NewLines(0, func(s string) { n += len(s) })
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		// Odd-sized writes so lines straddle Write calls, as pipe reads do.
		for p := data; len(p) > 0; {
			k := min(4093, len(p))
			l.Write(p[:k])
			p = p[k:]
		}
	}
	l.Flush()
}
