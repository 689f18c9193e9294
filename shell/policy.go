package shell

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Mode is the shell policy: which shell commands the service accepts at all.
type Mode string

// The shell policy modes (--shell any|allowlist|off).
const (
	// ModeAny accepts every shell command. It is the default, for a server
	// on a trusted network or behind API keys.
	ModeAny Mode = "any"
	// ModeAllowlist accepts only a single simple command whose executable
	// is on the allowlist and whose arguments are literal (see Policy.Check).
	ModeAllowlist Mode = "allowlist"
	// ModeOff refuses every shell command; function tasks still run.
	ModeOff Mode = "off"
)

// ErrRefused is matched (errors.Is) by every error Policy.Check and
// Policy.CheckEnv return, so that a caller that wrapped the error on its way
// (a job refused at start) can still answer 403 rather than 500.
var ErrRefused = errors.New("refused by the shell policy")

// refusal is a policy decision. Its text is the reason alone, because it
// becomes the detail of a 403 problem: the client needs to learn what to
// change, not that a policy exists.
type refusal struct{ reason string }

func (r *refusal) Error() string { return r.reason }
func (r *refusal) Unwrap() error { return ErrRefused }

func refuse(format string, args ...any) error {
	return &refusal{reason: fmt.Sprintf(format, args...)}
}

// ParseMode parses the value of --shell / SERVICEKIT_SHELL. Case and
// surrounding spaces are ignored, since the value often comes from an
// environment file; anything else, including "", is an error rather than a
// silent default, so a typo cannot leave the server more open than intended.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case ModeAny, ModeAllowlist, ModeOff:
		return m, nil
	}
	return "", fmt.Errorf("invalid shell policy %q: want any, allowlist or off", s)
}

// ParseAllowList splits the value of --shell-allow / SERVICEKIT_SHELL_ALLOW
// ("echo, python3,/usr/bin/rsync") into entries, trimming spaces and dropping
// empty ones. It does not validate them: NewPolicy does, so that a bad entry
// is reported with the reason.
func ParseAllowList(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// Policy decides which shell commands may be stored and run. The server
// checks it wherever a shell command enters or leaves the store (task
// create, PUT and PATCH, $execute, job start), so that tightening the policy
// also stops commands stored under a looser one. Function tasks are not subject to it:
// their code is compiled into the server.
//
// A nil *Policy behaves as ModeAny, the documented default. A Policy is
// read-only after construction and safe for concurrent use.
//
// # Allowlist mode
//
// The command is run by /bin/sh -c, so the policy must make sure the shell
// runs exactly the allowlisted executable with literal arguments: one simple
// command, no second command, no expansion, no redirection. Rather than trying
// to understand everything sh understands, Check accepts a small subset of
// POSIX sh words and refuses the rest:
//
//   - Words are separated by spaces and tabs. Outside quotes a word may hold
//     only ASCII letters, digits and % + , - . / : = @ _ . Everything else
//     unquoted is refused: ; & | ( ) { } ` $ < > (they chain, substitute,
//     group or redirect commands), * ? [ ] (file name globbing: it cannot run
//     anything, but it turns one argument into unexpected ones), ~ (tilde
//     expansion), # (sh starts a comment only at the start of a word, but
//     one rule is easier to trust than two), ! and ^ (a pipeline negation
//     in sh and a pipe in the Bourne shell), and every non-ASCII character
//     (quote arguments that need one).
//   - 'single quotes' may contain anything but control characters: sh
//     treats their content literally.
//   - "double quotes" may not contain $, ` or \, the three characters sh
//     still interprets inside them; everything else is literal.
//   - A backslash outside quotes escapes one printable ASCII character (or a
//     space), which becomes literal: echo a\;b passes the argument "a;b".
//   - Control characters (NUL, newline, carriage return, escape, C1 ...) are
//     refused anywhere, quoted or not; tab only separates words or stands for
//     itself inside quotes. Invalid UTF-8 is refused.
//
// Non-ASCII text is thus only ever inside quotes, whose closing bytes (0x22,
// 0x27) are never a trailing byte of a multibyte character in any locale a
// shell might run in (UTF-8 trail bytes are 0x80 and up; GBK, GB18030, Big5
// and Shift_JIS ones 0x30 and up), so no locale can make sh see a quote or
// an operator where Check saw text, or the reverse.
//
// The words Check sees are the argv sh builds: the tests run every accepted
// command of their tables and seed corpus through dash, bash (also in POSIX
// mode), busybox sh, mksh and zsh's sh emulation, where installed, and
// compare.
//
// The first word, with quotes removed, is the executable. It must not
// contain '=' (FOO=1 rm would run rm with a changed environment: set variables
// in the task's env instead), must be ASCII (so a Cyrillic "е" cannot pass
// for a Latin "e"), and must equal an allowlist entry exactly. An entry
// without a slash matches only the same bare name, which sh resolves through
// PATH or to its builtin; an absolute entry matches only that path. So with
// "echo" allowed, ./echo, ../bin/echo and /bin/echo are refused, and with
// /usr/bin/rsync allowed, rsync and /usr/local/bin/rsync are refused. Quotes
// inside the executable do not matter: e'c'ho is echo to sh and to Check,
// while "echo hi" is a program named "echo hi", which is refused.
//
// Some names are never allowed, even if listed, because the shell treats them
// as part of its own language rather than as a program: reserved words (if,
// time, !, coproc, ...), builtins that run their arguments as commands (eval,
// exec, ., source, command, builtin, trap, ...), and builtins that take
// variable names or arithmetic, where bash evaluates an array subscript such
// as 'a[$(id)]' and so runs a command hidden in a quoted, literal argument
// (printf -v, test -v, let, declare, read, ...). An admin who wants printf or
// test allowlists the external program by its absolute path
// (/usr/bin/printf), which sh runs as a file, never as its builtin.
//
// Allowlisting a program allows everything that program can do with
// arguments the client chooses: python3 -c '...', bash -c '...', env, xargs,
// sudo, find -exec, rsync -e and the like run arbitrary commands by design.
// Allowlist only programs whose every argument is safe to hand to a client.
// The same goes for the environment: see CheckEnv.
type Policy struct {
	Mode  Mode
	Allow []string // for ModeAllowlist: bare program names or absolute clean paths
}

// NewPolicy returns a validated policy. In allowlist mode each entry must be
// a bare program name (no '/') or an absolute clean path, made of ASCII
// letters, digits and % + - . : @ _ (and '/'), and must not be a name the
// policy never allows (see Policy). An empty allowlist in allowlist mode is
// an error, and so is an allowlist with mode any or off: both are
// misconfigurations, and the second would leave a server the admin believes
// restricted wide open. The slice is copied.
func NewPolicy(mode Mode, allow []string) (*Policy, error) {
	switch mode {
	case ModeAny, ModeOff:
		if len(allow) > 0 {
			return nil, fmt.Errorf("a shell allowlist (%s) is only used with shell policy %q, not %q",
				strings.Join(allow, ", "), ModeAllowlist, mode)
		}
	case ModeAllowlist:
		if len(allow) == 0 {
			return nil, fmt.Errorf("shell policy %q needs at least one allowed program (--shell-allow)", mode)
		}
		for _, e := range allow {
			if err := checkEntry(e); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("invalid shell policy %q: want any, allowlist or off", mode)
	}
	return &Policy{Mode: mode, Allow: slices.Clone(allow)}, nil
}

// String describes the policy for logs: "any", "off" or
// "allowlist (echo, python3)".
func (p *Policy) String() string {
	if p == nil {
		return string(ModeAny)
	}
	if p.Mode == ModeAllowlist {
		return fmt.Sprintf("%s (%s)", p.Mode, allowedList(p.Allow))
	}
	return string(p.Mode)
}

// Check returns nil if the command may be stored and run, else an error
// (matching ErrRefused) whose text says why, meant for a 403 problem detail.
// The rules of allowlist mode are in the Policy documentation. A mode other
// than the three known ones refuses everything: a policy that was built
// wrong must fail closed.
func (p *Policy) Check(command string) error {
	if p == nil {
		return nil
	}
	switch p.Mode {
	case ModeAny:
		return nil
	case ModeOff:
		return refuse("shell policy is %q: shell tasks are disabled", ModeOff)
	case ModeAllowlist:
	default:
		return refuse("shell policy %q is not valid: shell tasks are disabled", p.Mode)
	}
	words, err := splitWords(command)
	if err != nil {
		return err
	}
	exe := words[0]
	if strings.Contains(exe, "=") {
		return refuse("command starts with the variable assignment %q: environment prefixes are not allowed (set variables in the task's env)", exe)
	}
	if !isASCII(exe) {
		return refuse("executable name %s contains non-ASCII characters", strconv.QuoteToASCII(exe))
	}
	if n, ok := neverAllowed[exe]; ok {
		return refuse("%q is %s: it is never allowed by the shell allowlist", exe, n.why)
	}
	for _, e := range p.Allow {
		// Entries are re-validated so that a Policy built as a literal,
		// bypassing NewPolicy, cannot allow a relative path or a builtin.
		if e == exe && checkEntry(e) == nil {
			return nil
		}
	}
	return refuse("%q is not on the shell allowlist (allowed: %s)", exe, allowedList(p.Allow))
}

// CheckEnv checks the environment variables a shell task adds (the task's
// env merged with the $execute body's). In allowlist mode it refuses the
// variables that would let a client change which program runs or make the
// shell or the dynamic loader run code of the client's choosing before the
// allowed program starts: PATH (a bare name would resolve to another file),
// LD_* and DYLD_* (library injection), GCONV_PATH, GLIBC_TUNABLES and
// LOCPATH (glibc loads code or parses files from them), ENV and BASH_ENV
// (startup scripts), BASH_FUNC_* (bash imports functions that shadow the
// allowed name), SHELLOPTS, BASHOPTS, PS4, IFS, CDPATH, GLOBIGNORE,
// EXECIGNORE and BASH_LOADABLES_PATH (shell behavior). Names must also be
// portable identifiers ([A-Za-z_][A-Za-z0-9_]*), which rules out the
// "BASH_FUNC_f%%" form outright.
//
// Variables that only the allowed program reads (PYTHONPATH, RSYNC_RSH,
// GIT_SSH_COMMAND, HOME, ...) are like its arguments: they are the admin's to
// weigh when allowlisting it, and are not refused here. Mode any accepts any
// env; mode off refuses like Check, since there is no shell task to run.
func (p *Policy) CheckEnv(env map[string]string) error {
	if p == nil {
		return nil
	}
	switch p.Mode {
	case ModeAny:
		return nil
	case ModeOff:
		return refuse("shell policy is %q: shell tasks are disabled", ModeOff)
	case ModeAllowlist:
	default:
		return refuse("shell policy %q is not valid: shell tasks are disabled", p.Mode)
	}
	// Sorted, so that the same env is always refused for the same reason.
	for _, k := range slices.Sorted(maps.Keys(env)) {
		if !isIdentifier(k) {
			return refuse("environment variable name %s is not allowed with the shell allowlist: use letters, digits and _", strconv.QuoteToASCII(k))
		}
		if deniedEnv[k] || strings.HasPrefix(k, "LD_") || strings.HasPrefix(k, "DYLD_") || strings.HasPrefix(k, "BASH_FUNC_") {
			return refuse("environment variable %s is not allowed with the shell allowlist: it could change which program runs or inject code into it", k)
		}
	}
	return nil
}

// deniedEnv are the exact variable names CheckEnv refuses; see there.
var deniedEnv = map[string]bool{
	"PATH": true, "ENV": true, "BASH_ENV": true, "SHELLOPTS": true, "BASHOPTS": true,
	"PS4": true, "IFS": true, "CDPATH": true, "GLOBIGNORE": true, "EXECIGNORE": true,
	"BASH_LOADABLES_PATH": true, "GCONV_PATH": true, "GLIBC_TUNABLES": true, "LOCPATH": true,
}

// neverAllowed maps the names that can never be an allowlisted executable to
// why. They are refused in NewPolicy (so the admin learns at startup) and in
// Check (so a hand-built Policy cannot allow them either). A name with '/'
// is never looked up as a builtin or reserved word by sh, so only bare names
// are listed. Names the entry syntax already excludes ("!", "[[", "{") are
// listed too, so that Check gives the specific reason for them.
var neverAllowed = func() map[string]never {
	m := map[string]never{}
	// "-", nocorrect and noglob are zsh's precommand modifiers, listed with
	// the builtins because they too run their arguments as a command.
	const (
		reserved = "a shell reserved word"
		runs     = "a shell builtin that runs its arguments as shell code or commands"
		vars     = "a shell builtin that takes variable names or arithmetic, in which bash may run command substitutions hidden in array subscripts"
	)
	for _, w := range []string{
		"!", "{", "}", "[[", "]]", "case", "do", "done", "elif", "else", "esac", "fi", "for",
		"if", "in", "then", "until", "while", "function", "select", "time", "coproc",
		"repeat", "foreach",
	} {
		m[w] = never{why: reserved}
	}
	for _, w := range []string{
		".", "source", "eval", "exec", "command", "builtin", "trap", "fc", "enable",
		"compgen", "complete", "bind", "-", "nocorrect", "noglob",
	} {
		m[w] = never{why: runs}
	}
	for _, w := range []string{
		"let", "declare", "typeset", "local", "export", "readonly", "unset", "read",
		"mapfile", "readarray", "printf", "test", "[", "wait", "getopts",
	} {
		m[w] = never{why: vars}
	}
	// Builtins that also exist as ordinary programs, which an admin may
	// well want: the error tells how to allow the program instead.
	for _, w := range []string{"printf", "test"} {
		n := m[w]
		n.external = "/usr/bin/" + w
		m[w] = n
	}
	return m
}()

// never is why a name is in neverAllowed, and the absolute path of the
// external program of the same name, when there commonly is one.
type never struct{ why, external string }

// checkEntry validates one allowlist entry; see NewPolicy.
func checkEntry(e string) error {
	if e == "" {
		return errors.New("empty shell allowlist entry")
	}
	for i := 0; i < len(e); i++ {
		if c := e[i]; !isEntryByte(c) {
			r, _ := utf8.DecodeRuneInString(e[i:])
			return fmt.Errorf("shell allowlist entry %s contains %s: entries are program names or absolute paths made of letters, digits and %% + - . / : @ _",
				strconv.QuoteToASCII(e), strconv.QuoteRuneToASCII(r))
		}
	}
	if strings.HasPrefix(e, "/") {
		if e == "/" || path.Clean(e) != e {
			return fmt.Errorf("shell allowlist entry %q is not a clean absolute path to a program (like /usr/bin/rsync)", e)
		}
		return nil
	}
	if strings.Contains(e, "/") {
		return fmt.Errorf("shell allowlist entry %q is a relative path: use a bare program name (found through PATH) or an absolute path", e)
	}
	if n, ok := neverAllowed[e]; ok {
		hint := ""
		if n.external != "" {
			hint = fmt.Sprintf(" (to allow the external program, list its absolute path, like %s)", n.external)
		}
		return fmt.Errorf("shell allowlist entry %q is %s: it cannot be allowlisted%s", e, n.why, hint)
	}
	if strings.Trim(e, ".") == "" {
		return fmt.Errorf("shell allowlist entry %q is not a program name", e)
	}
	return nil
}

func allowedList(allow []string) string {
	if len(allow) == 0 {
		return "none"
	}
	return strings.Join(allow, ", ")
}

// isEntryByte reports whether c may appear in an allowlist entry: the
// unquoted-safe bytes less '=' (an assignment prefix) and ',' (the
// --shell-allow separator).
func isEntryByte(c byte) bool {
	return c != '=' && c != ',' && isSafeUnquoted(c)
}

// isSafeUnquoted reports whether sh gives byte c no meaning outside quotes,
// in any position of any word.
func isSafeUnquoted(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("%+,-./:=@_", c) >= 0
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func isIdentifier(s string) bool {
	if s == "" || ('0' <= s[0] && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// splitWords parses command as the subset of POSIX sh words that allowlist
// mode accepts (see Policy) and returns the words with quotes removed: the
// argv sh would build. Anything outside the subset is an error saying what
// was found, the first in the command, so that a client can fix it.
func splitWords(command string) ([]string, error) {
	if !utf8.ValidString(command) {
		return nil, refuse("command is not valid UTF-8")
	}
	// Control characters first, wherever they are: a newline inside quotes
	// is literal to sh, but refusing it everywhere keeps every accepted
	// command on one visible line.
	for _, r := range command {
		if r == '\n' {
			return nil, syntaxError("\n")
		}
		if r != '\t' && unicode.IsControl(r) {
			return nil, refuse("command contains the control character %s", strconv.QuoteRuneToASCII(r))
		}
	}
	var (
		words  []string
		word   strings.Builder
		inWord bool // a word has started, possibly an empty one ('')
	)
	for i := 0; i < len(command); {
		c := command[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
			i++
		case c == '\'':
			end := strings.IndexByte(command[i+1:], '\'')
			if end < 0 {
				return nil, refuse("command has an unterminated single quote")
			}
			word.WriteString(command[i+1 : i+1+end])
			inWord = true
			i += end + 2
		case c == '"':
			end := strings.IndexByte(command[i+1:], '"')
			if end < 0 {
				return nil, refuse("command has an unterminated double quote")
			}
			quoted := command[i+1 : i+1+end]
			if j := strings.IndexAny(quoted, "$`\\"); j >= 0 {
				if quoted[j] == '\\' {
					return nil, refuse("command contains a backslash inside double quotes: use single quotes for literal text")
				}
				return nil, syntaxError(quoted[j:])
			}
			word.WriteString(quoted)
			inWord = true
			i += end + 2
		case c == '\\':
			if i+1 >= len(command) {
				return nil, refuse("command ends with a backslash")
			}
			if n := command[i+1]; n >= utf8.RuneSelf {
				return nil, nonASCII(command[i+1:])
			} else if n < ' ' {
				return nil, refuse("command contains a backslash before %s: a backslash may only escape a printable ASCII character", strconv.QuoteRuneToASCII(rune(n)))
			}
			word.WriteByte(command[i+1])
			inWord = true
			i += 2
		case c >= utf8.RuneSelf:
			return nil, nonASCII(command[i:])
		case isSafeUnquoted(c):
			word.WriteByte(c)
			inWord = true
			i++
		default:
			return nil, syntaxError(command[i:])
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	if len(words) == 0 {
		return nil, refuse("command is empty")
	}
	return words, nil
}

func nonASCII(rest string) error {
	r, _ := utf8.DecodeRuneInString(rest)
	return refuse("command contains the non-ASCII character %s outside quotes: quote the argument", strconv.QuoteRuneToASCII(r))
}

// syntaxError describes the shell syntax that starts rest, naming the whole
// operator ("&&", ">>", "$(") when it has two characters.
func syntaxError(rest string) error {
	tok := rest[:1]
	pair := func(ops ...string) {
		for _, op := range ops {
			if strings.HasPrefix(rest, op) {
				tok = op
				return
			}
		}
	}
	var why string
	switch rest[0] {
	case ';', '&', '|', '(', ')', '{', '}', '`', '\n':
		pair("&&", "||")
		why = "could run another command"
	case '$':
		pair("$(", "${")
		why = "expands a variable"
		if tok == "$(" {
			why = "could run another command"
		}
	case '<', '>':
		pair(">>", ">&", ">|", "<<", "<&", "<>")
		why = "redirects input or output"
	case '*', '?', '[', ']':
		why = "expands to matching file names (quote it to pass it literally)"
	case '~':
		why = "expands to a home directory (quote it to pass it literally)"
	case '#':
		why = "starts a comment"
	default:
		why = "is special to some shells (quote it to pass it literally)"
	}
	return refuse("command contains shell syntax %q that %s", tok, why)
}
