package portal

import (
	"net/url"
	"strings"
)

// defaultNext is where a refused or missing next goes.
const defaultNext = "/connections"

// safeNext keeps redirects after login on this site. next is accepted only
// as a path a browser resolves on this host, judged both as written and as
// a browser reads it (the WHATWG URL parser removes tabs and newlines,
// trims leading controls and spaces, and takes a backslash for a slash):
// a path-absolute reference that url.Parse reads with no scheme, host or
// user, with no control character or backslash, raw or percent-encoded in
// the path, whose path does not start with "//" and has no dot segment
// (which would collapse to "//"). Everything else goes to /connections.
func safeNext(next string) string {
	if !localPath(next) {
		return defaultNext
	}
	return next
}

func localPath(next string) bool {
	if next == "" || next[0] != '/' || len(next) > 2048 {
		return false
	}
	if strings.ContainsFunc(next, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return false
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return false
	}
	// u.Path is decoded: %2f, %5c, %09 and the like count as what they
	// encode.
	p := u.Path
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
		return false
	}
	if strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return false
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}
