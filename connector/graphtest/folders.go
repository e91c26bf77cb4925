package graphtest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
)

// resolveFolder finds the route's folder by id or well-known name; s.mu held.
func (g *graphCall) resolveFolder() *folder { return g.mb.resolve(g.rt.folders) }

// parentFolder is the route's folder, or the root without one; s.mu held.
func (g *graphCall) parentFolder() *folder {
	if len(g.rt.folders) > 0 {
		return g.resolveFolder()
	}
	return g.mb.root()
}

func (g *graphCall) folderJSON(f *folder) map[string]any {
	total, unread := 0, 0
	for _, m := range g.mb.msgs {
		if m.folderID == f.id {
			total++
			if !m.isRead {
				unread++
			}
		}
	}
	return map[string]any{
		"id": f.id, "displayName": f.name, "parentFolderId": f.parentID,
		"childFolderCount": len(g.mb.children(f.id)), "unreadItemCount": unread, "totalItemCount": total,
		"sizeInBytes": 0, "isHidden": false,
	}
}

func (g *graphCall) folderContext() string {
	return baseURL(g.r) + "/v1.0/$metadata#users('" + g.mb.Address + "')/mailFolders/$entity"
}

func (g *graphCall) listFolders() result {
	parent := g.parentFolder()
	if parent == nil {
		return notFound()
	}
	q := g.r.URL.Query()
	var name string
	if flt := q.Get("$filter"); flt != "" {
		v, ok := parseEqString(flt, "displayName")
		if !ok {
			return fail(http.StatusBadRequest, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")
		}
		name = v
	}
	var all []any
	for _, f := range g.mb.children(parent.id) {
		if name != "" && !strings.EqualFold(f.name, name) {
			continue
		}
		all = append(all, selectFields(g.folderJSON(f), q.Get("$select")))
	}
	return page(g.r, baseURL(g.r)+"/v1.0/$metadata#users('"+g.mb.Address+"')/mailFolders", all, 10)
}

func (g *graphCall) getFolder() result {
	f := g.resolveFolder()
	if f == nil {
		return notFound()
	}
	obj := g.folderJSON(f)
	obj["@odata.context"] = g.folderContext()
	return answerJSON(http.StatusOK, selectFields(obj, g.r.URL.Query().Get("$select")))
}

func (g *graphCall) createFolder() result {
	var body struct {
		DisplayName string `json:"displayName"`
	}
	if err := json.NewDecoder(bytes.NewReader(g.body)).Decode(&body); err != nil || strings.TrimSpace(body.DisplayName) == "" {
		return fail(http.StatusBadRequest, "ErrorInvalidRequest", "The request body must contain a displayName.")
	}
	parent := g.parentFolder()
	if parent == nil {
		return notFound()
	}
	for _, c := range g.mb.children(parent.id) {
		if strings.EqualFold(c.name, body.DisplayName) {
			return fail(http.StatusConflict, "ErrorFolderExists", "A folder with the specified name already exists.")
		}
	}
	f := &folder{id: exchangeID("AAMkAD"), name: body.DisplayName, parentID: parent.id, created: g.s.now()}
	g.mb.folders[f.id] = f
	obj := g.folderJSON(f)
	obj["@odata.context"] = g.folderContext()
	return answerJSON(http.StatusCreated, obj)
}
