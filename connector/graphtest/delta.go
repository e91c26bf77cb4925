package graphtest

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// defaultDeltaPageSize is what delta returns per page without
// Prefer: odata.maxpagesize.
const defaultDeltaPageSize = 10

// syncState is what a next or delta link names.
type syncState struct {
	mailboxID, folderID string
	epoch               int
	since               int64 // changes after this sequence
	cursor              int64 // already sent up to here in this round
	until               int64 // round ends here; 0 = a delta link, fixed when followed
	sel                 string
	filter              string
	changeType          string // created, updated, deleted or empty for all
	user                string // path segment the client used (me or id/UPN)
}

type deltaItem struct {
	seq int64
	msg *message
	rem *removal
}

func (g *graphCall) delta() result {
	q := g.r.URL.Query()
	s := g.s
	token := firstNonEmpty(q.Get("$skiptoken"), q.Get("$deltatoken"))
	f := g.resolveFolder()
	if f == nil {
		return notFound()
	}
	var st syncState
	if token == "" {
		for k := range q {
			if k != "$select" && k != "$filter" && k != "changeType" && k != "$orderby" {
				return fail(http.StatusBadRequest, "ErrorInvalidUrlQuery",
					"The following parameters are not supported with change tracking over the 'Messages' resource: '"+k+"'.")
			}
		}
		switch q.Get("changeType") {
		case "", "created", "updated", "deleted":
		default:
			return fail(http.StatusBadRequest, "ErrorInvalidUrlQuery", "The changeType '"+q.Get("changeType")+"' is not supported; use created, updated or deleted.")
		}
		if _, bad := parseMessageFilter(q.Get("$filter"), true); bad != "" {
			return fail(http.StatusBadRequest, "ErrorInvalidUrlQueryFilter", bad)
		}
		st = syncState{mailboxID: g.mb.ID, folderID: f.id, epoch: g.mb.epoch, until: g.mb.seq,
			sel: q.Get("$select"), filter: q.Get("$filter"), changeType: q.Get("changeType"), user: g.rt.user}
	} else {
		old := s.mail.syncs[token]
		if old == nil || old.mailboxID != g.mb.ID || old.folderID != f.id || old.epoch != g.mb.epoch {
			res := fail(http.StatusGone, "SyncStateNotFound", "The sync state generation is no longer valid. Please restart the synchronization.")
			if old != nil && old.mailboxID == g.mb.ID {
				// Per docs the service sometimes names a fresh start.
				res = res.withHeader("Location", g.deltaURL(old.user, f.id, url.Values{"$select": {old.sel}, "$filter": {old.filter}}))
			}
			return res
		}
		st = *old
		if st.until == 0 {
			st.until = g.mb.seq
		}
	}
	flt, _ := parseMessageFilter(st.filter, true)
	var items []deltaItem
	for _, m := range g.mb.msgs {
		if m.folderID != f.id || m.seq <= st.cursor || m.seq > st.until {
			continue
		}
		created := st.since == 0 || m.enterSeq > st.since
		// The filter selects which messages enter the sync; later changes
		// (read state and so on) are reported regardless, as the service does.
		if created && !flt.match(m) {
			continue
		}
		if st.since > 0 && ((st.changeType == "created" && !created) || (st.changeType == "updated" && created) || st.changeType == "deleted") {
			continue
		}
		items = append(items, deltaItem{seq: m.seq, msg: m})
	}
	if st.since > 0 && (st.changeType == "" || st.changeType == "deleted") {
		for i := range f.removed {
			r := &f.removed[i]
			if r.seq > st.cursor && r.seq <= st.until {
				items = append(items, deltaItem{seq: r.seq, rem: r})
			}
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].seq < items[j].seq })
	var res result
	size := preferPageSize(g.r)
	if size > 0 {
		res = res.withHeader("Preference-Applied", "odata.maxpagesize="+strconv.Itoa(size))
	} else {
		size = defaultDeltaPageSize
	}
	more := len(items) > size
	if more {
		items = items[:size]
	}
	values := make([]any, 0, len(items)+1)
	var firstMsg map[string]any
	for _, it := range items {
		if it.rem != nil {
			id := it.rem.id
			if g.immutable {
				id = it.rem.immutableID
			}
			values = append(values, map[string]any{"@odata.type": "#microsoft.graph.message", "id": id, "@removed": map[string]any{"reason": "deleted"}})
			continue
		}
		obj := selectFields(g.messageJSON(it.msg), st.sel)
		obj["@odata.type"] = "#microsoft.graph.message"
		if firstMsg == nil {
			firstMsg = obj
		}
		values = append(values, obj)
	}
	if g.dupDelta && firstMsg != nil {
		values = append(values, firstMsg)
	}
	next := st
	resp := map[string]any{"@odata.context": baseURL(g.r) + "/v1.0/$metadata#Collection(message)", "value": values}
	tok := randToken(24)
	if more {
		next.cursor = items[len(items)-1].seq
		resp["@odata.nextLink"] = g.deltaURL(st.user, f.id, url.Values{"$skiptoken": {tok}})
	} else {
		next.since, next.cursor, next.until = st.until, st.until, 0
		resp["@odata.deltaLink"] = g.deltaURL(st.user, f.id, url.Values{"$deltatoken": {tok}})
	}
	s.mail.syncs[tok] = &next
	res.status, res.body = http.StatusOK, resp
	return res
}

// deltaURL builds a delta link on the host the client used.
func (g *graphCall) deltaURL(user, folderID string, q url.Values) string {
	for k, v := range q {
		if len(v) == 0 || v[0] == "" {
			delete(q, k)
		}
	}
	u := baseURL(g.r) + "/v1.0/"
	if user == "me" {
		u += "me"
	} else {
		u += "users/" + url.PathEscape(user)
	}
	u += "/mailFolders/" + url.PathEscape(folderID) + "/messages/delta"
	if enc := encodeQuery(q); enc != "" {
		u += "?" + enc
	}
	return strings.TrimSuffix(u, "?")
}
