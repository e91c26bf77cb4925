package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"github.com/mailgate/mailgate/connector"
)

// syncResetCodes are Graph error codes that mean "the delta state is gone,
// start a full sync", whatever the status.
var syncResetCodes = map[string]bool{
	"SyncStateNotFound":       true,
	"ResyncRequired":          true,
	"SyncStateInvalid":        true,
	"ErrorSyncFolderNotFound": true,
}

// apiError is Graph's answer to a failed request. It replaces the SDK's
// ODataError in our chains because ODataError.Error panics on an error body
// without message.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("status %d", e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// classify turns any failure of a request into a *connector.Error for op.
// Errors that already are (the TokenFunc's NeedsConsent, for instance) pass
// through unchanged.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var ce *connector.Error
	if errors.As(err, &ce) {
		return ce
	}
	var te *tokenError
	if errors.As(err, &te) {
		return connector.E(op, connector.Transient, err)
	}
	var fh *foreignHostError
	if errors.As(err, &fh) {
		return connector.E(op, connector.Invalid, err)
	}
	var we *waitError
	if errors.As(err, &we) {
		// Our own limiter (or a Retry-After it remembers) is holding the
		// mailbox: the same advice as Graph's 429.
		return &connector.Error{Op: op, Kind: connector.Throttled, RetryAfter: we.wait, Err: err}
	}
	var oe *odataerrors.ODataError
	if errors.As(err, &oe) {
		var code, msg string
		if me := oe.GetErrorEscaped(); me != nil {
			code, msg = deref(me.GetCode()), deref(me.GetMessage())
		}
		return statusError(op, oe.GetStatusCode(), code, msg, retryAfterOf(oe.GetResponseHeaders()))
	}
	var ae *abs.ApiError
	if errors.As(err, &ae) {
		return statusError(op, ae.ResponseStatusCode, "", ae.Message, retryAfterOf(ae.ResponseHeaders))
	}
	if errors.Is(err, context.Canceled) {
		return connector.E(op, connector.Other, err)
	}
	// Network failures, timeouts, truncated or malformed bodies.
	return connector.E(op, connector.Transient, err)
}

// statusError classifies Graph's answer by code first, then by status.
func statusError(op string, status int, code, msg string, retryAfter time.Duration) *connector.Error {
	e := &connector.Error{
		Op:   op,
		Code: code,
		Err:  &apiError{Status: status, Code: code, Message: msg},
	}
	switch {
	case syncResetCodes[code] || status == http.StatusGone:
		e.Kind = connector.SyncReset
	case status == http.StatusTooManyRequests:
		e.Kind = connector.Throttled
		e.RetryAfter = retryAfter
	case code == "ErrorAccessDenied" || status == http.StatusForbidden:
		e.Kind = connector.AccessDenied
	case status == http.StatusUnauthorized:
		// An expired or revoked token; the token source decides about
		// NeedsConsent when it is asked for a new one.
		e.Kind = connector.Transient
	case status == http.StatusNotFound:
		e.Kind = connector.NotFound
	case status == http.StatusRequestTimeout || status >= 500:
		e.Kind = connector.Transient
		e.RetryAfter = retryAfter
	case status == http.StatusBadRequest, status == http.StatusMethodNotAllowed,
		status == http.StatusRequestEntityTooLarge, status == http.StatusUnprocessableEntity:
		e.Kind = connector.Invalid
	default:
		e.Kind = connector.Other
	}
	return e
}

// responseError classifies a failed raw response (content streams) the same
// way the SDK path is classified, and closes its body.
func responseError(op string, resp *http.Response) error {
	defer resp.Body.Close()
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	// Best effort: an unreadable error body still classifies by status.
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
	ra := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return statusError(op, resp.StatusCode, body.Error.Code, body.Error.Message, ra)
}

func retryAfterOf(h *abs.ResponseHeaders) time.Duration {
	if h == nil {
		return 0
	}
	for _, v := range h.Get("Retry-After") {
		if d := parseRetryAfter(v, time.Now()); d > 0 {
			return d
		}
	}
	return 0
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
