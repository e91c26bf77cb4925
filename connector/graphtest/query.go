package graphtest

import (
	"html"
	"strings"
	"time"
)

type messageFilter struct {
	hasAtt   *bool
	isRead   *bool
	timeOps  []string
	timeVals []time.Time
}

func (f messageFilter) match(m *message) bool {
	if f.hasAtt != nil && m.hasAttachments() != *f.hasAtt {
		return false
	}
	if f.isRead != nil && m.isRead != *f.isRead {
		return false
	}
	for i, op := range f.timeOps {
		t, v := m.mail.ReceivedAt, f.timeVals[i]
		ok := map[string]bool{"ge": !t.Before(v), "gt": t.After(v), "le": !t.After(v), "lt": t.Before(v)}[op]
		if !ok {
			return false
		}
	}
	return true
}

// parseMessageFilter parses "a and b" clauses; delta allows only
// receivedDateTime ge|gt.
func parseMessageFilter(s string, delta bool) (messageFilter, string) {
	var f messageFilter
	if strings.TrimSpace(s) == "" {
		return f, ""
	}
	const bad = "The query filter contains one or more invalid nodes."
	for _, clause := range splitAnd(s) {
		fields := strings.Fields(clause)
		if len(fields) != 3 {
			return f, bad
		}
		prop, op, val := strings.ToLower(fields[0]), strings.ToLower(fields[1]), fields[2]
		switch {
		case prop == "receiveddatetime" && (op == "ge" || op == "gt" || (!delta && (op == "le" || op == "lt"))):
			t, err := parseODataTime(strings.Trim(val, "'"))
			if err != nil {
				return f, bad
			}
			f.timeOps = append(f.timeOps, op)
			f.timeVals = append(f.timeVals, t)
		case !delta && prop == "hasattachments" && op == "eq":
			b := strings.EqualFold(val, "true")
			f.hasAtt = &b
		case !delta && prop == "isread" && op == "eq":
			b := strings.EqualFold(val, "true")
			f.isRead = &b
		default:
			return f, bad
		}
	}
	return f, ""
}

func splitAnd(s string) []string {
	var out []string
	for _, p := range strings.Split(s, " and ") {
		if p = strings.TrimSpace(strings.Trim(strings.TrimSpace(p), "()")); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseEqString parses "prop eq 'value'".
func parseEqString(s, prop string) (string, bool) {
	s = strings.TrimSpace(s)
	rest, ok := cutPrefixFold(s, prop+" eq ")
	if !ok || len(rest) < 2 || rest[0] != '\'' || rest[len(rest)-1] != '\'' {
		return "", false
	}
	return strings.ReplaceAll(rest[1:len(rest)-1], "''", "'"), true
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// selectFields keeps id, annotations and the $select-ed properties. A
// property of a derived type may be selected through a type cast
// ("microsoft.graph.fileAttachment/contentId", OData v4); it applies to
// objects of that @odata.type only.
func selectFields(obj map[string]any, sel string) map[string]any {
	if strings.TrimSpace(sel) == "" {
		return obj
	}
	var want []string
	typ, _ := obj["@odata.type"].(string)
	for _, w := range strings.Split(sel, ",") {
		cast, prop, ok := strings.Cut(strings.TrimSpace(w), "/")
		switch {
		case !ok:
			want = append(want, w)
		case strings.EqualFold("#"+cast, typ):
			want = append(want, prop)
		}
	}
	out := map[string]any{}
	for k, v := range obj {
		if k == "id" || strings.HasPrefix(k, "@odata.") || containsFold(want, k) {
			out[k] = v
		}
	}
	return out
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(strings.TrimSpace(x), s) {
			return true
		}
	}
	return false
}

// writePage writes a collection page honouring $top and $skip, with an
// @odata.nextLink on the request's own host. $count=true adds
// @odata.count, the number of matching items on all pages, as Outlook's
// collections do without a ConsistencyLevel header (that header is needed

// parseODataTime accepts the DateTimeOffset forms clients send.
func parseODataTime(v string) (time.Time, error) {
	var err error
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		var t time.Time
		if t, err = time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}

// expand adds the attachments for $expand=attachments (optionally with a

// stripTags is a crude HTML to text conversion, enough for previews.
func stripTags(s string) string {
	var b strings.Builder
	in := false
	for _, r := range s {
		switch {
		case r == '<':
			in = true
		case r == '>':
			in = false
		case !in:
			b.WriteRune(r)
		}
	}
	return strings.TrimSpace(html.UnescapeString(b.String()))
}
