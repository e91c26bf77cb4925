package graphtest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// result is a Graph handler's answer. Handlers run with s.mu held and
// return one; respond writes it after the lock is released, so no handler
// unlocks by hand and no answer is written under the lock.
type result struct {
	status int
	header http.Header // added to the answer's headers
	body   any         // JSON body; nil with write nil = an empty answer
	// write writes a body that must not be built under the lock (streams,
	// raw content, base64 of stored bytes); it sets its own headers and
	// status. It only reads what the handler snapshotted.
	write func(w http.ResponseWriter)
	err   *apiError
}

// apiError is an answer in Graph's error shape.
type apiError struct {
	status    int
	code, msg string
}

func fail(status int, code, msg string) result {
	return result{err: &apiError{status: status, code: code, msg: msg}}
}

func notFound() result {
	return fail(http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
}

func answerJSON(status int, body any) result { return result{status: status, body: body} }

// withHeader adds a header to the result.
func (r result) withHeader(k, v string) result {
	if r.header == nil {
		r.header = http.Header{}
	}
	r.header.Add(k, v)
	return r
}

// respond writes a handler's result: the one place a Graph answer is written.
func respond(c *call, res result) {
	for k, vs := range res.header {
		for _, v := range vs {
			c.w.Header().Add(k, v)
		}
	}
	switch {
	case res.err != nil:
		graphError(c.w, c.r, res.err.status, res.err.code, res.err.msg)
	case res.write != nil:
		res.write(c.w)
	case res.body != nil:
		writeJSON(c.w, res.status, res.body)
	default:
		c.w.WriteHeader(res.status)
	}
}

// page answers a collection page honouring $top and $skip, with an
// @odata.nextLink on the request's own host. $count=true adds
// @odata.count, the number of matching items on all pages, as Outlook's
// collections do without a ConsistencyLevel header (that header is needed
// for directory objects only); a $count other than true or false is a 400.
func page(r *http.Request, odataContext string, all []any, defaultTop int) result {
	q := r.URL.Query()
	var count bool
	switch v, ok := q["$count"]; {
	case !ok:
	case len(v) == 1 && strings.EqualFold(v[0], "true"):
		count = true
	case len(v) == 1 && strings.EqualFold(v[0], "false"):
	default:
		return fail(http.StatusBadRequest, "BadRequest", "Invalid $count value: must be true or false.")
	}
	top, skip := defaultTop, 0
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fail(http.StatusBadRequest, "BadRequest", "Invalid $top value.")
		}
		top = min(n, 1000)
	}
	if v := q.Get("$skip"); v != "" {
		skip, _ = strconv.Atoi(v)
	}
	if skip > len(all) {
		skip = len(all)
	}
	end := min(skip+top, len(all))
	items := all[skip:end]
	if items == nil {
		items = []any{}
	}
	resp := map[string]any{"@odata.context": odataContext, "value": items}
	if count {
		resp["@odata.count"] = len(all)
	}
	if end < len(all) {
		q.Set("$skip", strconv.Itoa(end))
		resp["@odata.nextLink"] = baseURL(r) + r.URL.EscapedPath() + "?" + encodeQuery(q)
	}
	return answerJSON(http.StatusOK, resp)
}

// encodeQuery encodes like Graph's links do: '$' stays literal.
func encodeQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		for _, v := range q[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(strings.ReplaceAll(url.QueryEscape(k), "%24", "$"))
			b.WriteByte('=')
			b.WriteString(url.QueryEscape(v))
		}
	}
	return b.String()
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func preferImmutable(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		if strings.Contains(strings.ReplaceAll(v, " ", ""), `IdType="ImmutableId"`) {
			return true
		}
	}
	return false
}

// preferPageSize reads Prefer: odata.maxpagesize=N.
func preferPageSize(r *http.Request) int {
	for _, v := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			if n, ok := strings.CutPrefix(p, "odata.maxpagesize="); ok {
				if i, err := strconv.Atoi(strings.Trim(n, `"`)); err == nil && i > 0 {
					return i
				}
			}
		}
	}
	return 0
}

// preferBodyType reads Prefer: outlook.body-content-type="text"|"html".
func preferBodyType(r *http.Request) string {
	for _, v := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			if t, ok := strings.CutPrefix(strings.TrimSpace(p), "outlook.body-content-type="); ok {
				return strings.ToLower(strings.Trim(t, `"`))
			}
		}
	}
	return ""
}
