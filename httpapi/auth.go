package httpapi

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// Auth is the API key configuration. With no keys the API is open.
type Auth struct {
	// Keys are the accepted API keys.
	Keys []string
	// Header is the header carrying a key; default X-API-Key.
	// "Authorization: Bearer <key>" is always accepted too (Prometheus sends that).
	Header string
}

// ParseKeys splits a comma-separated key list, dropping blanks.
func ParseKeys(list string) []string {
	var keys []string
	for k := range strings.SplitSeq(list, ",") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// ReadKeyFile reads one key a line; blank lines and lines starting with # are ignored.
func ReadKeyFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("API key file: %w", err)
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		keys = append(keys, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("API key file %s: %w", path, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("API key file %s holds no keys", path)
	}
	return keys, nil
}

// openPath reports whether a path is served without a key: health for
// probes, the API description, and the console's static files (the
// console asks for a key itself when the API answers 401).
func openPath(p string) bool {
	switch p {
	case "/health", "/openapi.json", "/openapi.yaml", "/openapi-3.0.json", "/openapi-3.0.yaml", "/docs", "/":
		return true
	}
	return strings.HasPrefix(p, "/ui/") || strings.HasPrefix(p, "/schemas/")
}

// authenticate refuses requests without a valid key when keys are set.
// Keys are compared as SHA-256 digests with subtle.ConstantTimeCompare and
// every key is checked, so timing tells nothing about a key's length,
// prefix or position in the list. Keys are never logged.
func (s *Server) authenticate(next http.Handler) http.Handler {
	a := s.d.Auth
	if len(a.Keys) == 0 {
		return next
	}
	header := a.Header
	if header == "" {
		header = "X-API-Key"
	}
	digests := make([][32]byte, len(a.Keys))
	for i, k := range a.Keys {
		digests[i] = sha256.Sum256([]byte(k))
	}
	challenge := fmt.Sprintf(`Bearer realm="servicekit", ApiKey header=%q`, header)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if openPath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		key := r.Header.Get(header)
		if key == "" {
			if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
				key = strings.TrimSpace(v)
			}
		}
		var detail string
		if key == "" {
			detail = fmt.Sprintf("missing API key: send it as %s: <key> or Authorization: Bearer <key>", header)
		} else {
			d := sha256.Sum256([]byte(key))
			match := 0
			for i := range digests {
				match |= subtle.ConstantTimeCompare(d[:], digests[i][:])
			}
			if match == 1 {
				next.ServeHTTP(w, r)
				return
			}
			detail = "the API key is not valid"
		}
		p := newProblem(http.StatusUnauthorized, detail)
		p.header = http.Header{"WWW-Authenticate": {challenge}}
		writeProblem(w, r, p)
	})
}
