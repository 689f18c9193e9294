package output

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

// DefaultMaxLine is the longest line Lines emits whole when NewLines is given
// a maxLine of 0.
const DefaultMaxLine = 64 << 10

// Lines is an io.Writer that splits its input into lines and hands each
// complete line to an emit function, without the "\n" and without a "\r"
// just before it, so CRLF output reads like LF output.
//
// A line longer than maxLine bytes is emitted in pieces of at most maxLine
// bytes as it arrives, so a job printing megabytes without a newline cannot
// make the server buffer it all. Pieces are cut before a UTF-8 sequence that
// would not fit, not in its middle, and every emitted string is valid UTF-8:
// invalid bytes are replaced with U+FFFD, because lines end up in JSON and in
// database text columns that reject invalid UTF-8.
//
// Lines is not safe for concurrent use; give each stream its own Lines, or
// serialize the writes. emit is called synchronously from Write and Flush.
type Lines struct {
	maxLine int
	emit    func(string)
	buf     []byte // the current partial line; len(buf) <= maxLine
	cont    bool   // part of the current line was already emitted as a piece
}

// NewLines returns a Lines that calls emit for each line. maxLine <= 0 means
// DefaultMaxLine.
func NewLines(maxLine int, emit func(line string)) *Lines {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	return &Lines{maxLine: maxLine, emit: emit}
}

// Write emits every line that p completes and keeps the rest for the next
// Write or Flush. It always returns len(p), nil.
func (l *Lines) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.add(p)
			break
		}
		if len(l.buf) == 0 && !l.cont && i <= l.maxLine {
			// Fast path: a whole line inside p needs no copy into buf.
			l.emitLine(p[:i])
		} else {
			l.add(p[:i])
			l.endLine()
		}
		p = p[i+1:]
	}
	return n, nil
}

// Flush emits the partial line left by the last Write, if any, as if it had
// ended with a newline. Call it when the stream ends so a final line printed
// without "\n" is not lost.
func (l *Lines) Flush() {
	if len(l.buf) > 0 {
		l.endLine()
	}
	l.cont = false
}

// add appends data to the current line, emitting a piece whenever the line
// would grow past maxLine. Pieces are emitted only once more data arrives, so
// a line of exactly maxLine bytes is still emitted whole by endLine.
func (l *Lines) add(data []byte) {
	for len(data) > 0 {
		if len(l.buf) == l.maxLine {
			l.emitPiece()
		}
		if l.buf == nil {
			l.buf = make([]byte, 0, l.maxLine)
		}
		k := min(l.maxLine-len(l.buf), len(data))
		l.buf = append(l.buf, data[:k]...)
		data = data[k:]
	}
}

// emitPiece emits a full buffer as a piece of a long line, keeping back an
// incomplete UTF-8 sequence at its end for the next piece.
func (l *Lines) emitPiece() {
	cut := len(l.buf)
	for i := cut - 1; i >= 0 && i >= cut-utf8.UTFMax; i-- {
		if utf8.RuneStart(l.buf[i]) {
			if !utf8.FullRune(l.buf[i:]) && i > 0 {
				cut = i
			}
			break
		}
	}
	l.emit(validString(l.buf[:cut]))
	l.buf = l.buf[:copy(l.buf, l.buf[cut:])]
	l.cont = true
}

// endLine emits the buffered line and starts a new one.
func (l *Lines) endLine() {
	line := l.buf
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	// After pieces of a long line, an empty remainder (the line ended on a
	// piece boundary, possibly followed by "\r") is not a line of its own.
	if len(line) > 0 || !l.cont {
		l.emit(validString(line))
	}
	l.buf = l.buf[:0]
	l.cont = false
}

func (l *Lines) emitLine(line []byte) {
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	l.emit(validString(line))
}

func validString(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
