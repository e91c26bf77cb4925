package graphtest

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

func attachmentObject(a *attachment, withContent bool) map[string]any {
	obj := map[string]any{
		"id": a.id, "lastModifiedDateTime": fmtTime(a.modified), "name": a.a.Name,
		"contentType": nilIfEmpty(a.a.ContentType), "size": a.size(), "isInline": a.a.Inline,
	}
	switch {
	case a.a.Item != nil:
		obj["@odata.type"] = "#microsoft.graph.itemAttachment"
	case a.a.ReferenceURL != "":
		obj["@odata.type"] = "#microsoft.graph.referenceAttachment"
	default:
		obj["@odata.type"] = "#microsoft.graph.fileAttachment"
		obj["@odata.mediaContentType"] = firstNonEmpty(a.a.ContentType, "application/octet-stream")
		obj["contentId"] = nilIfEmpty(a.a.ContentID)
		obj["contentLocation"] = nil
		if withContent {
			obj["contentBytes"] = base64.StdEncoding.EncodeToString(a.a.Content)
		}
	}
	return obj
}

func (g *graphCall) attachments() result {
	m := g.lookupMessage()
	if m == nil {
		return notFound()
	}
	// Attachments never change once delivered: the snapshot is read, and
	// the stored bytes encoded, outside the lock.
	atts := append([]*attachment(nil), m.attachments...)
	sel := g.r.URL.Query().Get("$select")
	// Only encode contentBytes when the answer carries it.
	withContent := sel == "" || containsFold(strings.Split(sel, ","), "contentBytes")
	base := baseURL(g.r)
	if g.rt.endpoint == "attachments.list" {
		odataContext := base + "/v1.0/$metadata#users('" + g.mb.Address + "')/messages('" + g.rt.msgID + "')/attachments"
		if strings.TrimSpace(sel) == "" {
			return result{write: func(w http.ResponseWriter) { streamAttachments(w, odataContext, atts) }}
		}
		return result{write: func(w http.ResponseWriter) {
			all := make([]any, 0, len(atts))
			for _, a := range atts {
				all = append(all, selectFields(attachmentObject(a, withContent), sel))
			}
			writeJSON(w, http.StatusOK, map[string]any{"@odata.context": odataContext, "value": all})
		}}
	}
	var a *attachment
	for _, x := range atts {
		if x.id == g.rt.attID {
			a = x
		}
	}
	if a == nil {
		return notFound()
	}
	if g.rt.endpoint == "attachment.get" {
		odataContext := base + "/v1.0/$metadata#users('" + g.mb.Address + "')/messages('" + g.rt.msgID + "')/attachments/$entity"
		return result{write: func(w http.ResponseWriter) {
			obj := selectFields(attachmentObject(a, withContent), sel)
			obj["@odata.context"] = odataContext
			writeJSON(w, http.StatusOK, obj)
		}}
	}
	switch {
	case a.a.Item != nil:
		return result{write: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", strconv.Itoa(len(a.mime)))
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(a.mime)
		}}
	case a.a.ReferenceURL != "":
		return fail(http.StatusBadRequest, "ErrorInvalidRequest", "The attachment has no raw content.")
	default:
		return result{write: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", firstNonEmpty(a.a.ContentType, "application/octet-stream"))
			w.Header().Set("Content-Length", strconv.Itoa(len(a.a.Content)))
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(a.a.Content) // the stored bytes, not a copy
		}}
	}
}

// the order Graph sends them; contentBytes follows.
type fileAttachmentMeta struct {
	Type                 string  `json:"@odata.type"`
	MediaContentType     string  `json:"@odata.mediaContentType"`
	ID                   string  `json:"id"`
	LastModifiedDateTime string  `json:"lastModifiedDateTime"`
	Name                 string  `json:"name"`
	ContentType          *string `json:"contentType"`
	Size                 int     `json:"size"`
	IsInline             bool    `json:"isInline"`
	ContentID            *string `json:"contentId"`
	ContentLocation      *string `json:"contentLocation"`
}

// otherAttachmentMeta is an item or reference attachment in a listing
// (an item attachment's item only comes with $expand, which the simulator
// doesn't offer on this listing).
type otherAttachmentMeta struct {
	Type                 string  `json:"@odata.type"`
	ID                   string  `json:"id"`
	LastModifiedDateTime string  `json:"lastModifiedDateTime"`
	Name                 string  `json:"name"`
	ContentType          *string `json:"contentType"`
	Size                 int     `json:"size"`
	IsInline             bool    `json:"isInline"`
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// streamAttachments writes the listing without $select, every file
// attachment with its contentBytes, as a stream: the metadata of one
// attachment at a time, then its content through a base64 encoder, never
// the whole answer in memory and without Content-Length (chunked), as
// Graph answers large listings. The simulator runs in-process in
// `mailgate bench`, where its memory counts.
func streamAttachments(w http.ResponseWriter, odataContext string, atts []*attachment) {
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	ctxJSON, _ := json.Marshal(odataContext)
	bw.WriteString(`{"@odata.context":`)
	bw.Write(ctxJSON)
	bw.WriteString(`,"value":[`)
	for i, a := range atts {
		if i > 0 {
			bw.WriteByte(',')
		}
		var meta any
		file := a.a.Item == nil && a.a.ReferenceURL == ""
		switch {
		case a.a.Item != nil:
			meta = otherAttachmentMeta{Type: "#microsoft.graph.itemAttachment"}
		case a.a.ReferenceURL != "":
			meta = otherAttachmentMeta{Type: "#microsoft.graph.referenceAttachment"}
		}
		if file {
			meta = fileAttachmentMeta{
				Type: "#microsoft.graph.fileAttachment", MediaContentType: firstNonEmpty(a.a.ContentType, "application/octet-stream"),
				ID: a.id, LastModifiedDateTime: fmtTime(a.modified), Name: a.a.Name, ContentType: optString(a.a.ContentType),
				Size: a.size(), IsInline: a.a.Inline, ContentID: optString(a.a.ContentID),
			}
		} else {
			o := meta.(otherAttachmentMeta)
			o.ID, o.LastModifiedDateTime, o.Name = a.id, fmtTime(a.modified), a.a.Name
			o.ContentType, o.Size, o.IsInline = optString(a.a.ContentType), a.size(), a.a.Inline
			meta = o
		}
		b, err := json.Marshal(meta)
		if err != nil {
			panic(http.ErrAbortHandler) // can't happen: plain strings and numbers
		}
		if !file {
			bw.Write(b)
			continue
		}
		bw.Write(b[:len(b)-1]) // without '}'
		bw.WriteString(`,"contentBytes":"`)
		enc := base64.NewEncoder(base64.StdEncoding, bw)
		enc.Write(a.a.Content) // the stored bytes, not a copy
		enc.Close()
		bw.WriteString(`"}`)
	}
	bw.WriteString(`]}`)
	bw.Flush()
}
