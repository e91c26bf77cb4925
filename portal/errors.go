package portal

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/mailgate/mailgate/connector"
)

// Sentinel kinds of portal errors; errorInfo maps them to HTTP answers.
var (
	errNotFound     = errors.New("not found")
	errUnauthorized = errors.New("not logged in")
	errForbidden    = errors.New("access not allowed")
	errInvalidCode  = errors.New("invalid, expired or used code")
	errBadCSRF      = errors.New("form expired")
)

// invalidError is a rejected input with a message safe to show.
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }

func invalid(msg string) error { return &invalidError{msg: msg} }

// rateLimitedError says the caller must wait.
type rateLimitedError struct{ retryAfter time.Duration }

func (e *rateLimitedError) Error() string { return "too many attempts" }

// errorInfo is the one place that turns an error into an HTTP status, a
// machine-readable code and a message safe to show. Anything unclassified is
// an internal error whose detail is only logged.
func errorInfo(err error) (status int, code, message string) {
	var inv *invalidError
	var rl *rateLimitedError
	switch {
	case errors.Is(err, errBadKey), errors.Is(err, errUnauthorized):
		return http.StatusUnauthorized, "unauthorized", "missing or invalid credentials"
	case errors.Is(err, errForbidden):
		return http.StatusForbidden, "forbidden", "access not allowed"
	case errors.As(err, &rl):
		return http.StatusTooManyRequests, "rate_limited", "too many attempts, try again later"
	case isInvalidCode(err):
		return http.StatusBadRequest, "invalid_code", "the code is invalid, expired or already used"
	case errors.Is(err, errMethodNotAllowed):
		return http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed"
	case errors.Is(err, errUnsupportedMedia):
		return http.StatusUnsupportedMediaType, "unsupported_media_type", "unsupported media type"
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge, "too_large", "request body too large"
	case errors.Is(err, errBadCSRF):
		return http.StatusForbidden, "csrf", "the form has expired; reload the page and try again"
	case errors.As(err, &inv):
		return http.StatusBadRequest, "invalid", inv.msg
	case errors.Is(err, errNotFound), connector.IsKind(err, connector.NotFound):
		return http.StatusNotFound, "not_found", "not found"
	case errors.Is(err, context.DeadlineExceeded), connector.IsKind(err, connector.Transient), connector.IsKind(err, connector.Throttled):
		return http.StatusServiceUnavailable, "unavailable", "temporarily unavailable, try again later"
	}
	return http.StatusInternalServerError, "internal", "internal error"
}

// isInvalidCode reports whether a Codes.Redeem error means the code is no
// good (invalid, expired, used, another customer's). They all get the same
// answer.
func isInvalidCode(err error) bool {
	return errors.Is(err, errInvalidCode) || errors.Is(err, connector.ErrInvalidCode)
}

func retryAfterHeader(w http.ResponseWriter, err error) {
	var rl *rateLimitedError
	if errors.As(err, &rl) {
		secs := int(rl.retryAfter.Round(time.Second) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	}
}
