package shell

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// The reference parser is a second, independent statement of the grammar
// allowlist mode accepts, written as regular expressions instead of the
// hand-written scanner in splitWords. The fuzz target checks that the two
// agree on every input, in both directions: a scanner bug that accepts
// something the grammar does not (or the reverse) shows up as a mismatch.
const (
	refSafe   = `[A-Za-z0-9%+,\-./:=@_]`
	refEscape = `\\[ -~]`
	refSingle = `'[^']*'`
	refDouble = `"[^"$` + "`" + `\\]*"`
	refWord   = `(?:` + refSafe + `|` + refEscape + `|` + refSingle + `|` + refDouble + `)+`
)

var (
	refCommand = regexp.MustCompile(`^[ \t]*` + refWord + `(?:[ \t]+` + refWord + `)*[ \t]*$`)
	refPart    = regexp.MustCompile(refSafe + `+|` + refEscape + `|` + refSingle + `|` + refDouble + `|[ \t]+`)
)

// referenceAccepts reports whether the allowlist rules accept command, and
// its words, computed without splitWords.
func referenceAccepts(allow []string, command string) ([]string, bool) {
	if !utf8.ValidString(command) {
		return nil, false
	}
	for _, r := range command {
		if r != '\t' && unicode.IsControl(r) {
			return nil, false
		}
	}
	if !refCommand.MatchString(command) {
		return nil, false
	}
	var words []string
	var word strings.Builder
	inWord := false
	for _, part := range refPart.FindAllString(command, -1) {
		switch {
		case part[0] == ' ' || part[0] == '\t':
			if inWord {
				words = append(words, word.String())
				word.Reset()
			}
			inWord = false
			continue
		case part[0] == '\\':
			word.WriteString(part[1:])
		case part[0] == '\'' || part[0] == '"':
			word.WriteString(part[1 : len(part)-1])
		default:
			word.WriteString(part)
		}
		inWord = true
	}
	if inWord {
		words = append(words, word.String())
	}
	exe := words[0]
	for _, r := range exe {
		if r == '=' || r >= utf8.RuneSelf {
			return words, false
		}
	}
	if _, never := neverAllowed[exe]; never {
		return words, false
	}
	// Allow entries are bare names or clean absolute paths (NewPolicy
	// validated them), so exact equality is the whole matching rule.
	return words, slices.Contains(allow, exe)
}

// FuzzPolicyCheck: for any input Check never panics, modes any and off
// answer without looking, and allowlist mode accepts exactly what the
// reference grammar accepts, parsing it to the same argv, with none of the
// shell's metacharacters left outside quotes.
func FuzzPolicyCheck(f *testing.F) {
	for _, tc := range hostileCommands {
		f.Add(tc.cmd)
	}
	for _, tc := range benignCommands {
		f.Add(tc.cmd)
	}
	p := testPolicy(f)
	anyP := &Policy{Mode: ModeAny}
	off := &Policy{Mode: ModeOff}
	f.Fuzz(func(t *testing.T, command string) {
		if err := anyP.Check(command); err != nil {
			t.Fatalf("any refused %q: %v", command, err)
		}
		if err := off.Check(command); err == nil {
			t.Fatalf("off accepted %q", command)
		}

		err := p.Check(command)
		refWords, refOK := referenceAccepts(p.Allow, command)
		if (err == nil) != refOK {
			t.Fatalf("Check(%q) = %v, but the reference parser accepts=%v (words %q)", command, err, refOK, refWords)
		}
		if err != nil {
			if !errors.Is(err, ErrRefused) || err.Error() == "" {
				t.Fatalf("Check(%q) = %#v: not a refusal with a reason", command, err)
			}
			return
		}

		words, err := splitWords(command)
		if err != nil {
			t.Fatalf("Check accepted %q but splitWords failed: %v", command, err)
		}
		if !slices.Equal(words, refWords) {
			t.Fatalf("splitWords(%q) = %q, reference %q", command, words, refWords)
		}
		if !slices.Contains(testAllow, words[0]) {
			t.Fatalf("Check accepted %q whose executable %q is not allowlisted", command, words[0])
		}
		if bad, ok := unquotedMetachar(command); ok {
			t.Fatalf("Check accepted %q with %q outside quotes", command, bad)
		}
	})
}

// unquotedMetachar returns the first character outside quotes, not escaped
// by a backslash, that sh could give a meaning, scanning with the plainest
// possible quote tracking. It states the security property directly, apart
// from either grammar.
func unquotedMetachar(s string) (rune, bool) {
	var quote rune
	escaped := false
	for _, r := range s {
		switch {
		case escaped:
			escaped = false
		case quote != 0:
			if r == quote {
				quote = 0
			} else if quote == '"' && strings.ContainsRune("$`\\", r) {
				return r, true
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '\\':
			escaped = true
		case strings.ContainsRune(";&|<>(){}$`*?[]~#!^\n\r\x00", r), r >= utf8.RuneSelf:
			return r, true
		}
	}
	if quote != 0 || escaped {
		return quote, true
	}
	return 0, false
}
