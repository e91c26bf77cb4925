package portal

import (
	"errors"
	"mime"
	"net/http"
	"strings"
)

// Request bodies are small: a form is a few fields, an API request one
// code. Anything larger is refused before it is read.
const (
	maxFormBytes = 64 << 10
	maxAPIBytes  = 64 << 10
)

var (
	errMethodNotAllowed = errors.New("method not allowed")
	errUnsupportedMedia = errors.New("unsupported media type")
	errTooLarge         = errors.New("request body too large")
)

// boundedForms parses every browser POST's form once, from a body limited
// to maxFormBytes, so a handler never reads more; a form of another media
// type is 415 and a body over the limit 413. It runs inside the session
// middleware, so the error page can render.
func (s *Server) boundedForms(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost { // the only method with a form; others get the mux's 405
			if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
				s.fail(w, r, errUnsupportedMedia)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
					s.fail(w, r, errTooLarge)
					return
				}
				s.fail(w, r, invalid("error.bad_form"))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// boundedAPI limits an API request's body to maxAPIBytes and requires JSON
// when there is a body.
func boundedAPI(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxAPIBytes)
	if r.ContentLength == 0 || r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodDelete {
		return nil
	}
	if r.ContentLength > maxAPIBytes {
		return errTooLarge
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return errUnsupportedMedia
	}
	return nil
}

// apiAllow returns the methods the API serves on path ("" for a path it
// does not know), for the 405 answer's Allow header.
func apiAllow(path string) string {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(segs) < 3 || segs[0] != "api" || segs[1] != "v1" || segs[2] != "connections" {
		return ""
	}
	switch {
	case len(segs) == 3:
		return "GET, HEAD"
	case len(segs) == 4 && segs[3] == "redeem":
		return "POST"
	case len(segs) == 4:
		return "GET, HEAD, DELETE"
	case len(segs) == 5 && segs[4] == "test":
		return "POST"
	}
	return ""
}
