package graphtest

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

// graphError writes Graph's full error shape; the SDK panics on an error
// body without message.
func graphError(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	reqID := newGUID()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("request-id", reqID)
	if cid := r.Header.Get("client-request-id"); cid != "" {
		w.Header().Set("client-request-id", cid)
	}
	w.WriteHeader(status)
	body := map[string]any{"error": map[string]any{
		"code":    code,
		"message": message,
		"innerError": map[string]any{
			"date":              time.Now().UTC().Format("2006-01-02T15:04:05"),
			"request-id":        reqID,
			"client-request-id": clientRequestID(r, reqID),
		},
	}}
	_ = json.NewEncoder(w).Encode(body)
}

func clientRequestID(r *http.Request, fallback string) string {
	if cid := r.Header.Get("client-request-id"); cid != "" {
		return cid
	}
	return fallback
}

// aadError writes the identity platform's error JSON.
func aadError(w http.ResponseWriter, status int, code string, aadsts int, description string) {
	aadErrorSub(w, status, code, aadsts, "", description)
}

// aadErrorSub writes the identity platform's error JSON as Microsoft
// documents it: error, error_description "AADSTSnnnnn: …" followed by the
// trace and correlation ids and the timestamp, error_codes, timestamp,
// trace_id, correlation_id, error_uri, and suberror when there is one.
func aadErrorSub(w http.ResponseWriter, status int, code string, aadsts int, suberror, description string) {
	trace, corr := newGUID(), newGUID()
	ts := time.Now().UTC().Format("2006-01-02 15:04:05Z")
	desc := fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", aadsts, description, trace, corr, ts)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("x-ms-request-id", trace)
	w.WriteHeader(status)
	body := map[string]any{
		"error":             code,
		"error_description": desc,
		"error_codes":       []int{aadsts},
		"timestamp":         ts,
		"trace_id":          trace,
		"correlation_id":    corr,
		"error_uri":         "https://login.microsoftonline.com/error?code=" + strconv.Itoa(aadsts),
	}
	if suberror != "" {
		body["suberror"] = suberror
	}
	_ = json.NewEncoder(w).Encode(body)
}

// tokenErr is an identity platform error to be written by aadError.
type tokenErr struct {
	status int
	code   string
	aadsts int
	desc   string
}

func (e *tokenErr) Error() string { return fmt.Sprintf("%s: AADSTS%d: %s", e.code, e.aadsts, e.desc) }

func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(int(math.Max(1, math.Ceil(d.Seconds()))))
}
