package graphtest

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func deliverN(t *testing.T, s *Server, mailbox string, n int, start time.Time) []string {
	t.Helper()
	var ids []string
	for i := range n {
		id, err := s.Deliver(mailbox, Mail{
			From: "lieferant@example.com", FromName: "Lieferant", Subject: fmt.Sprintf("Rechnung %03d", i),
			Body: "Anbei die Rechnung.", ReceivedAt: start.Add(time.Duration(i) * time.Minute),
			Attachments: []Attachment{{Name: fmt.Sprintf("RE-%03d.pdf", i), ContentType: "application/pdf", Content: []byte("%PDF-1.7 " + fmt.Sprint(i))}},
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

type deltaPage struct {
	ids, removed    []string
	next, deltaLink string
}

func getDelta(t *testing.T, s *Server, link, token string, hdr map[string]string) (deltaPage, answer) {
	t.Helper()
	a := do(t, s, http.MethodGet, link, token, nil, hdr)
	if a.status != http.StatusOK {
		return deltaPage{}, a
	}
	body := a.json(t)
	var p deltaPage
	for _, v := range body["value"].([]any) {
		m := v.(map[string]any)
		if m["@removed"] != nil {
			if m["@removed"].(map[string]any)["reason"] != "deleted" || m["@odata.type"] != "#microsoft.graph.message" {
				t.Errorf("removal shape: %v", m)
			}
			p.removed = append(p.removed, m["id"].(string))
			continue
		}
		p.ids = append(p.ids, m["id"].(string))
	}
	p.next, _ = body["@odata.nextLink"].(string)
	p.deltaLink, _ = body["@odata.deltaLink"].(string)
	if (p.next == "") == (p.deltaLink == "") {
		t.Fatalf("want exactly one of nextLink and deltaLink: %v", body)
	}
	return p, a
}

func TestDelta(t *testing.T) {
	s := NewServer()
	defer s.Close()
	access, _ := userToken(t, s, DefaultUser)
	base := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	ids := deliverN(t, s, DefaultMailbox, 25, base)
	pref := map[string]string{"Prefer": "odata.maxpagesize=10"}
	start := s.GraphURL() + "/users/" + url.PathEscape(DefaultMailbox) + "/mailFolders/inbox/messages/delta()?$select=subject,internetMessageId"

	// Initial round: three pages.
	var got []string
	link := start
	pages := 0
	var deltaLink, firstNext string
	for link != "" {
		p, a := getDelta(t, s, link, access, pref)
		if a.status != http.StatusOK {
			t.Fatalf("page %d: %d %s", pages, a.status, truncate(a.body))
		}
		if a.header.Get("Preference-Applied") != "odata.maxpagesize=10" {
			t.Errorf("Preference-Applied %q", a.header.Get("Preference-Applied"))
		}
		if pages == 0 {
			firstNext = p.next
		}
		pages++
		got = append(got, p.ids...)
		link, deltaLink = p.next, p.deltaLink
		if link != "" && !strings.HasPrefix(link, s.URL+"/v1.0/") {
			t.Fatalf("next link %q not on the simulator's host", link)
		}
	}
	if pages != 3 || len(got) != 25 {
		t.Fatalf("initial round: %d pages, %d messages; want 3, 25", pages, len(got))
	}
	if !strings.Contains(deltaLink, "$deltatoken=") || !strings.Contains(firstNext, "$skiptoken=") {
		t.Errorf("links: next %q delta %q", firstNext, deltaLink)
	}

	// Changes: one moved out (removal), one new, one read (changed).
	if _, err := s.MoveMessage(DefaultMailbox, ids[3], "archive"); err != nil {
		t.Fatal(err)
	}
	newID, _ := s.Deliver(DefaultMailbox, Mail{From: "x@example.com", Subject: "neu"})
	a := do(t, s, http.MethodPatch, "/v1.0/users/"+DefaultMailbox+"/messages/"+url.PathEscape(ids[5]), access, jsonBody(map[string]any{"isRead": true}), nil)
	if a.status != http.StatusOK {
		t.Fatalf("patch: %d %s", a.status, a.body)
	}

	tests := []struct {
		name        string
		prepare     func()
		link        func() string
		wantIDs     []string
		wantRemoved []string
		wantGone    bool
		wantLoc     bool
	}{
		{name: "changes since delta link", link: func() string { return deltaLink },
			wantIDs: []string{newID, ids[5]}, wantRemoved: []string{ids[3]}},
		{name: "delta link can be followed again", link: func() string { return deltaLink },
			wantIDs: []string{newID, ids[5]}, wantRemoved: []string{ids[3]}},
		{name: "unknown token", link: func() string { return start[:strings.Index(start, "?")] + "?$deltatoken=nonsense" }, wantGone: true},
		{name: "reset delta link", prepare: func() { s.ResetDelta(DefaultMailbox) }, link: func() string { return deltaLink }, wantGone: true, wantLoc: true},
		{name: "reset next link", link: func() string { return firstNext }, wantGone: true, wantLoc: true},
		{name: "fresh start after reset", link: func() string { return start + "&" }, wantIDs: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.prepare != nil {
				tt.prepare()
			}
			p, a := getDelta(t, s, tt.link(), access, map[string]string{"Prefer": "odata.maxpagesize=100"})
			if tt.wantGone {
				wantGraphError(t, a, http.StatusGone, "SyncStateNotFound")
				if loc := a.header.Get("Location"); tt.wantLoc && !strings.Contains(loc, "/messages/delta") {
					t.Errorf("Location %q", loc)
				}
				return
			}
			if a.status != http.StatusOK {
				t.Fatalf("%d %s", a.status, truncate(a.body))
			}
			if tt.wantIDs == nil { // full resync: everything still in the inbox
				if len(p.ids) != 25 || len(p.removed) != 0 {
					t.Errorf("resync: %d ids, %d removed; want 25, 0", len(p.ids), len(p.removed))
				}
				return
			}
			if fmt.Sprint(p.ids) != fmt.Sprint(tt.wantIDs) || fmt.Sprint(p.removed) != fmt.Sprint(tt.wantRemoved) {
				t.Errorf("ids %v removed %v; want %v, %v", p.ids, p.removed, tt.wantIDs, tt.wantRemoved)
			}
		})
	}
}

func TestDeltaQueryOptions(t *testing.T) {
	s := NewServer()
	defer s.Close()
	access, _ := userToken(t, s, DefaultUser)
	base := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	deliverN(t, s, DefaultMailbox, 12, base)
	folder := "/v1.0/users/" + DefaultMailbox + "/mailFolders/inbox/messages/delta"
	tests := []struct {
		name     string
		query    string
		fault    *Fault
		wantN    int
		wantCode string
	}{
		{name: "default page size", query: "", wantN: 10},
		{name: "filter receivedDateTime ge", query: "?$filter=" + url.QueryEscape("receivedDateTime ge 2026-11-01T08:05:00Z"), wantN: 7},
		{name: "top not supported", query: "?$top=5", wantCode: "ErrorInvalidUrlQuery"},
		{name: "filter on other property refused", query: "?$filter=" + url.QueryEscape("hasAttachments eq true"), wantCode: "ErrorInvalidUrlQueryFilter"},
		{name: "duplicate fault", query: "?$filter=" + url.QueryEscape("receivedDateTime gt 2026-11-01T08:10:00Z"), fault: &Fault{PathContains: "/delta", DuplicateDelta: true, Count: 1}, wantN: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fault != nil {
				s.Inject(*tt.fault)
			}
			a := do(t, s, http.MethodGet, folder+tt.query, access, nil, nil)
			if tt.wantCode != "" {
				wantGraphError(t, a, http.StatusBadRequest, tt.wantCode)
				return
			}
			if a.status != http.StatusOK {
				t.Fatalf("%d %s", a.status, truncate(a.body))
			}
			vals := a.json(t)["value"].([]any)
			if len(vals) != tt.wantN {
				t.Errorf("%d items, want %d", len(vals), tt.wantN)
			}
		})
	}
}

func TestMessagesAndFolders(t *testing.T) {
	s := NewServer()
	defer s.Close()
	access, _ := userToken(t, s, DefaultUser)
	base := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	deliverN(t, s, DefaultMailbox, 15, base)
	if _, err := s.Deliver(DefaultMailbox, Mail{From: "a@example.com", Subject: "ohne", ReceivedAt: base.Add(time.Hour),
		Attachments: []Attachment{{Name: "logo.png", ContentType: "image/png", Content: []byte("png"), Inline: true, ContentID: "logo"}}}); err != nil {
		t.Fatal(err)
	}
	mb := "/v1.0/users/" + DefaultMailbox
	tests := []struct {
		name   string
		method string
		path   string
		body   any
		status int
		check  func(t *testing.T, body map[string]any)
	}{
		{name: "list default page and nextLink", method: "GET", path: mb + "/mailFolders/inbox/messages", status: 200,
			check: func(t *testing.T, b map[string]any) {
				if n := len(b["value"].([]any)); n != 10 {
					t.Errorf("%d messages, want 10", n)
				}
				next, _ := b["@odata.nextLink"].(string)
				if !strings.HasPrefix(next, "http://127.0.0.1") || !strings.Contains(next, "$skip=10") {
					t.Errorf("nextLink %q", next)
				}
				m := b["value"].([]any)[0].(map[string]any)
				for _, k := range []string{"id", "internetMessageId", "subject", "from", "receivedDateTime", "hasAttachments", "isRead",
					"categories", "parentFolderId", "body", "changeKey", "@odata.etag"} {
					if _, ok := m[k]; !ok {
						t.Errorf("message without %s", k)
					}
				}
				if m["subject"] != "ohne" || m["hasAttachments"] != false {
					t.Errorf("newest first, inline only → hasAttachments false: %v %v", m["subject"], m["hasAttachments"])
				}
				if rd := m["receivedDateTime"].(string); !strings.HasSuffix(rd, "Z") {
					t.Errorf("receivedDateTime %q", rd)
				}
			}},
		{name: "select and top", method: "GET", path: mb + "/messages?$select=subject&$top=3", status: 200,
			check: func(t *testing.T, b map[string]any) {
				vals := b["value"].([]any)
				m := vals[0].(map[string]any)
				if len(vals) != 3 || m["subject"] == nil || m["body"] != nil || m["id"] == nil {
					t.Errorf("select: %v", m)
				}
			}},
		{name: "filter hasAttachments", method: "GET", path: mb + "/messages?$top=100&$filter=" + url.QueryEscape("hasAttachments eq true"), status: 200,
			check: func(t *testing.T, b map[string]any) {
				if n := len(b["value"].([]any)); n != 15 {
					t.Errorf("%d, want 15", n)
				}
			}},
		{name: "filter receivedDateTime gt", method: "GET", path: mb + "/messages?$filter=" + url.QueryEscape("receivedDateTime gt 2026-11-01T08:12:00Z"), status: 200,
			check: func(t *testing.T, b map[string]any) {
				if n := len(b["value"].([]any)); n != 3 {
					t.Errorf("%d, want 3", n)
				}
			}},
		{name: "folders list", method: "GET", path: mb + "/mailFolders", status: 200,
			check: func(t *testing.T, b map[string]any) {
				if n := len(b["value"].([]any)); n != 6 {
					t.Errorf("%d folders, want 6", n)
				}
			}},
		{name: "folder by well-known name", method: "GET", path: mb + "/mailFolders/inbox", status: 200,
			check: func(t *testing.T, b map[string]any) {
				if b["displayName"] != "Inbox" || b["totalItemCount"].(float64) != 16 {
					t.Errorf("inbox: %v", b)
				}
			}},
		{name: "folder OData key form", method: "GET", path: mb + "/mailFolders('archive')", status: 200},
		{name: "create child folder", method: "POST", path: mb + "/mailFolders/inbox/childFolders", body: map[string]any{"displayName": "Verarbeitet"}, status: 201},
		{name: "duplicate child folder", method: "POST", path: mb + "/mailFolders/inbox/childFolders", body: map[string]any{"displayName": "verarbeitet"}, status: 409},
		{name: "filter child folders", method: "GET", path: mb + "/mailFolders/inbox/childFolders?$filter=" + url.QueryEscape("displayName eq 'Verarbeitet'"), status: 200,
			check: func(t *testing.T, b map[string]any) {
				if n := len(b["value"].([]any)); n != 1 {
					t.Errorf("%d, want 1", n)
				}
			}},
		{name: "unknown folder", method: "GET", path: mb + "/mailFolders/nope", status: 404},
		{name: "unknown message", method: "GET", path: mb + "/messages/AAMkADnope%3D", status: 404},
		{name: "me is the signed-in user", method: "GET", path: "/v1.0/me", status: 200,
			check: func(t *testing.T, b map[string]any) {
				if b["userPrincipalName"] != DefaultUser || b["id"] != DefaultUserID {
					t.Errorf("me: %v", b)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body *bytes.Reader
			a := answer{}
			if tt.body != nil {
				body = jsonBody(tt.body).(*bytes.Reader)
				a = do(t, s, tt.method, tt.path, access, body, nil)
			} else {
				a = do(t, s, tt.method, tt.path, access, nil, nil)
			}
			if a.status != tt.status {
				t.Fatalf("status %d, want %d: %s", a.status, tt.status, truncate(a.body))
			}
			if a.status >= 400 {
				wantGraphError(t, a, tt.status, map[int]string{404: "ErrorItemNotFound", 409: "ErrorFolderExists"}[tt.status])
				return
			}
			if tt.check != nil {
				tt.check(t, a.json(t))
			}
		})
	}
}

func TestAttachments(t *testing.T) {
	s := NewServer()
	defer s.Close()
	access, _ := userToken(t, s, DefaultUser)
	big := make([]byte, 20<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	inner := Mail{From: "b@example.com", Subject: "weitergeleitet", Body: "inner",
		Attachments: []Attachment{{Name: "x.txt", ContentType: "text/plain", Content: []byte("hello")}}}
	id, err := s.Deliver(DefaultMailbox, Mail{From: "a@example.com", Subject: "groß", Attachments: []Attachment{
		{Name: "scan.pdf", ContentType: "application/pdf", Content: big},
		{Name: "fwd.eml", Item: &inner},
		{Name: "link", ReferenceURL: "https://contoso.sharepoint.com/x.pdf"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	msg := "/v1.0/users/" + url.PathEscape(DefaultMailbox) + "/messages/" + url.PathEscape(id)
	a := do(t, s, "GET", msg+"/attachments?$select=id,name,size,contentType,isInline", access, nil, nil)
	if a.status != 200 {
		t.Fatalf("list: %d %s", a.status, truncate(a.body))
	}
	vals := a.json(t)["value"].([]any)
	wantTypes := []string{"#microsoft.graph.fileAttachment", "#microsoft.graph.itemAttachment", "#microsoft.graph.referenceAttachment"}
	if len(vals) != 3 {
		t.Fatalf("%d attachments", len(vals))
	}
	for i, v := range vals {
		m := v.(map[string]any)
		if m["@odata.type"] != wantTypes[i] || m["contentBytes"] != nil {
			t.Errorf("attachment %d: type %v, contentBytes present %v", i, m["@odata.type"], m["contentBytes"] != nil)
		}
	}
	file := vals[0].(map[string]any)
	if file["size"].(float64) != float64(len(big)) {
		t.Errorf("size %v", file["size"])
	}
	attID := file["id"].(string)

	t.Run("get with contentBytes", func(t *testing.T) {
		a := do(t, s, "GET", msg+"/attachments/"+url.PathEscape(vals[1].(map[string]any)["id"].(string)), access, nil, nil)
		if a.status != 200 || a.json(t)["name"] != "fwd.eml" {
			t.Fatalf("%d %s", a.status, truncate(a.body))
		}
		small, _ := s.Deliver(DefaultMailbox, Mail{Subject: "klein", Attachments: []Attachment{{Name: "a.txt", Content: []byte("abc")}}})
		a = do(t, s, "GET", "/v1.0/me/messages/"+url.PathEscape(small)+"/attachments", access, nil, nil)
		if a.status != 404 { // the message is in rechnungen, not in anna's own mailbox
			t.Errorf("cross-mailbox message: %d", a.status)
		}
		a = do(t, s, "GET", "/v1.0/users/"+DefaultMailbox+"/messages/"+url.PathEscape(small)+"/attachments", access, nil, nil)
		cb := a.json(t)["value"].([]any)[0].(map[string]any)["contentBytes"]
		if cb != base64.StdEncoding.EncodeToString([]byte("abc")) {
			t.Errorf("contentBytes %v", cb)
		}
	})
	t.Run("select derived-type property with a cast", func(t *testing.T) {
		inl, _ := s.Deliver(DefaultMailbox, Mail{Subject: "logo", Attachments: []Attachment{
			{Name: "logo.png", ContentType: "image/png", Content: []byte("png"), Inline: true, ContentID: "logo@1"},
			{Name: "fwd.eml", Item: &inner},
		}})
		a := do(t, s, "GET", "/v1.0/users/"+DefaultMailbox+"/messages/"+url.PathEscape(inl)+
			"/attachments?$select=id,isInline,microsoft.graph.fileAttachment/contentId", access, nil, nil)
		if a.status != 200 {
			t.Fatalf("%d %s", a.status, truncate(a.body))
		}
		vals := a.json(t)["value"].([]any)
		file, item := vals[0].(map[string]any), vals[1].(map[string]any)
		if file["contentId"] != "logo@1" || file["isInline"] != true || file["contentBytes"] != nil || file["name"] != nil {
			t.Errorf("file attachment = %v", file)
		}
		if _, ok := item["contentId"]; ok {
			t.Errorf("item attachment has contentId: %v", item)
		}
	})
	t.Run("list with content streams 20 MB", func(t *testing.T) {
		a := do(t, s, "GET", msg+"/attachments", access, nil, nil)
		if a.status != 200 {
			t.Fatalf("%d %s", a.status, truncate(a.body))
		}
		if cl := a.header.Get("Content-Length"); cl != "" {
			t.Errorf("Content-Length %s: the listing is not streamed", cl)
		}
		// Graph's order of properties, contentBytes last.
		first := string(a.body[:bytes.Index(a.body, []byte(`"contentBytes"`))+20])
		last := -1
		for _, k := range []string{"@odata.type", "@odata.mediaContentType", "id", "lastModifiedDateTime", "name",
			"contentType", "size", "isInline", "contentId", "contentLocation", "contentBytes"} {
			i := strings.Index(first, `"`+k+`":`)
			if i <= last {
				t.Errorf("%s at %d, want after %d: %s", k, i, last, first)
			}
			last = i
		}
		vals := a.json(t)["value"].([]any)
		if len(vals) != 3 {
			t.Fatalf("%d attachments", len(vals))
		}
		file := vals[0].(map[string]any)
		got, err := base64.StdEncoding.DecodeString(file["contentBytes"].(string))
		if err != nil || sha256.Sum256(got) != sha256.Sum256(big) {
			t.Errorf("contentBytes: %d bytes, %v", len(got), err)
		}
		if file["contentId"] != nil || file["contentType"] != "application/pdf" || file["size"].(float64) != float64(len(big)) || file["id"] != attID {
			t.Errorf("file attachment = %v", truncate([]byte(fmt.Sprint(file)[:200])))
		}
		for i, v := range vals[1:] {
			m := v.(map[string]any)
			_, cb := m["contentBytes"]
			_, cid := m["contentId"]
			if m["@odata.type"] != wantTypes[i+1] || cb || cid || m["id"] == nil {
				t.Errorf("attachment %d = %v", i+1, m)
			}
		}
	})
	t.Run("value streams 20 MB", func(t *testing.T) {
		start := time.Now()
		a := do(t, s, "GET", msg+"/attachments/"+url.PathEscape(attID)+"/$value", access, nil, nil)
		if a.status != 200 || a.header.Get("Content-Type") != "application/pdf" {
			t.Fatalf("%d %v", a.status, a.header)
		}
		if sha256.Sum256(a.body) != sha256.Sum256(big) {
			t.Fatalf("content differs (%d bytes)", len(a.body))
		}
		t.Logf("20 MB $value in %v", time.Since(start))
	})
	t.Run("item attachment value is MIME", func(t *testing.T) {
		a := do(t, s, "GET", msg+"/attachments/"+url.PathEscape(vals[1].(map[string]any)["id"].(string))+"/$value", access, nil, nil)
		if a.status != 200 || !strings.Contains(string(a.body), "Subject: weitergeleitet") || !strings.Contains(string(a.body), "x.txt") {
			t.Fatalf("%d %s", a.status, truncate(a.body))
		}
	})
	t.Run("message MIME", func(t *testing.T) {
		a := do(t, s, "GET", msg+"/$value", access, nil, nil)
		if a.status != 200 || !strings.Contains(string(a.body[:2000]), "multipart/mixed") || len(a.body) < len(big) {
			t.Fatalf("%d len %d", a.status, len(a.body))
		}
	})
}

func TestMove(t *testing.T) {
	s := NewServer()
	defer s.Close()
	access, _ := userToken(t, s, DefaultUser)
	immutable := map[string]string{"Prefer": `IdType="ImmutableId"`}
	tests := []struct {
		name     string
		action   string
		body     map[string]any
		hdr      map[string]string
		sameID   bool
		wantDest string
	}{
		{name: "move new id", action: "move", body: map[string]any{"destinationId": "archive"}, wantDest: "archive"},
		{name: "SDK form capital D", action: "microsoft.graph.move", body: map[string]any{"DestinationId": "deleteditems"}, wantDest: "deleteditems"},
		{name: "immutable id kept", action: "move", body: map[string]any{"destinationId": "archive"}, hdr: immutable, sameID: true, wantDest: "archive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mutable, _ := s.Deliver(DefaultMailbox, Mail{Subject: tt.name})
			id := mutable
			if tt.hdr != nil {
				id = s.Messages(DefaultMailbox, "inbox")[len(s.Messages(DefaultMailbox, "inbox"))-1].ImmutableID
			}
			a := do(t, s, "POST", "/v1.0/users/"+DefaultMailbox+"/messages/"+url.PathEscape(id)+"/"+tt.action, access, jsonBody(tt.body), tt.hdr)
			if a.status != http.StatusCreated {
				t.Fatalf("%d %s", a.status, a.body)
			}
			newID := a.json(t)["id"].(string)
			if (newID == id) != tt.sameID {
				t.Errorf("id %q → %q, want same=%v", id, newID, tt.sameID)
			}
			if got := s.Messages(DefaultMailbox, tt.wantDest); len(got) == 0 || got[len(got)-1].Subject != tt.name {
				t.Errorf("not in %s", tt.wantDest)
			}
			old := do(t, s, "GET", "/v1.0/users/"+DefaultMailbox+"/messages/"+url.PathEscape(id), access, nil, tt.hdr)
			if tt.sameID != (old.status == 200) {
				t.Errorf("old id answers %d", old.status)
			}
		})
	}
	t.Run("person moves it", func(t *testing.T) {
		id, _ := s.Deliver(DefaultMailbox, Mail{Subject: "p"})
		newID, err := s.MoveMessage(DefaultMailbox, id, "archive")
		if err != nil || newID == id {
			t.Fatalf("%q %v", newID, err)
		}
	})
}

func TestGzipBodyAndEncodedPaths(t *testing.T) {
	s := NewServer()
	defer s.Close()
	access, _ := userToken(t, s, DefaultUser)
	s.AddMailbox(Mailbox{Address: "re+chnung/en=x@firma.example", Shared: true})
	s.GrantFullAccess(DefaultUser, "re+chnung/en=x@firma.example")
	id, _ := s.Deliver(DefaultMailbox, Mail{Subject: "gz"})
	odd, _ := s.Deliver("re+chnung/en=x@firma.example", Mail{Subject: "odd"})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(`{"isRead":true,"categories":["mailgate-imported"]}`))
	_ = zw.Close()

	tests := []struct {
		name   string
		method string
		path   string
		body   []byte
		hdr    map[string]string
	}{
		{name: "percent-encoded UPN and id", method: "GET", path: "/v1.0/users/rechnungen%40firma.example/messages/" + strings.ReplaceAll(url.PathEscape(id), "=", "%3D")},
		{name: "plus slash equals in UPN", method: "GET", path: "/v1.0/users/re%2Bchnung%2Fen%3Dx%40firma.example/messages/" + url.PathEscape(odd)},
		{name: "user by object id", method: "GET", path: "/v1.0/users/" + DefaultUserID + "/mailFolders/inbox"},
		{name: "gzip PATCH", method: "PATCH", path: "/v1.0/users/" + DefaultMailbox + "/messages/" + url.PathEscape(id), body: gz.Bytes(),
			hdr: map[string]string{"Content-Encoding": "gzip"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, s, tt.method, tt.path, access, bytes.NewReader(tt.body), tt.hdr)
			if a.status != 200 {
				t.Fatalf("%d %s", a.status, truncate(a.body))
			}
		})
	}
	st := s.Messages(DefaultMailbox, "inbox")[0]
	if !st.IsRead || len(st.Categories) != 1 || st.Categories[0] != "mailgate-imported" {
		t.Errorf("gzip PATCH not applied: %+v", st)
	}
}

func TestAccess(t *testing.T) {
	s := NewServer()
	defer s.Close()
	anna, _ := userToken(t, s, DefaultUser)
	s.AddApp(App{ClientID: "11111111-2222-4333-8444-555555555555", ClientSecret: "other-secret", DisplayName: "no consent"})
	appDefault := appToken(t, s, DefaultClientID, DefaultClientSecret)
	appNoConsent := appToken(t, s, "11111111-2222-4333-8444-555555555555", "other-secret")
	s.AllowAppMailbox(DefaultClientID, DefaultMailbox)
	expired := s.signJWT(map[string]any{"aud": graphResource, "exp": time.Now().Add(-time.Minute).Unix(), "tid": DefaultTenantID, "scp": "Mail.ReadWrite.Shared"})
	wrongAud := s.signJWT(map[string]any{"aud": "api://other", "exp": time.Now().Add(time.Hour).Unix(), "tid": DefaultTenantID, "scp": "Mail.ReadWrite.Shared"})
	inbox := func(mb string) string { return "/v1.0/users/" + mb + "/mailFolders/inbox/messages" }
	tests := []struct {
		name   string
		token  string
		path   string
		status int
		code   string
	}{
		{name: "delegated shared mailbox with full access", token: anna, path: inbox(DefaultMailbox), status: 200},
		{name: "delegated own mailbox", token: anna, path: "/v1.0/me/mailFolders/inbox/messages", status: 200},
		{name: "delegated mailbox without rights", token: anna, path: inbox(DefaultOtherUser), status: 403, code: "ErrorAccessDenied"},
		{name: "app-only allowed by policy", token: appDefault, path: inbox(DefaultMailbox), status: 200},
		{name: "app-only outside policy", token: appDefault, path: inbox(DefaultOtherUser), status: 403, code: "ErrorAccessDenied"},
		{name: "app-only without admin consent", token: appNoConsent, path: inbox(DefaultMailbox), status: 403, code: "ErrorAccessDenied"},
		{name: "app-only on /me", token: appDefault, path: "/v1.0/me/messages", status: 400, code: "BadRequest"},
		{name: "unknown mailbox", token: anna, path: inbox("nobody@firma.example"), status: 404, code: "ErrorInvalidUser"},
		{name: "no token", token: "", path: inbox(DefaultMailbox), status: 401, code: "InvalidAuthenticationToken"},
		{name: "garbage token", token: "abc", path: inbox(DefaultMailbox), status: 401, code: "InvalidAuthenticationToken"},
		{name: "expired token", token: expired, path: inbox(DefaultMailbox), status: 401, code: "InvalidAuthenticationToken"},
		{name: "wrong audience", token: wrongAud, path: inbox(DefaultMailbox), status: 401, code: "InvalidAuthenticationToken"},
		{name: "unknown segment", token: anna, path: "/v1.0/users/" + DefaultMailbox + "/calendar", status: 400, code: "BadRequest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, s, "GET", tt.path, tt.token, nil, map[string]string{"client-request-id": "c-1"})
			if tt.status == 200 {
				if a.status != 200 {
					t.Fatalf("%d %s", a.status, truncate(a.body))
				}
				return
			}
			wantGraphError(t, a, tt.status, tt.code)
		})
	}
}

func TestExpandBodyPreferenceAndDirectory(t *testing.T) {
	s := NewServer()
	defer s.Close()
	access, _ := userToken(t, s, DefaultUser)
	id, _ := s.Deliver(DefaultMailbox, Mail{Subject: "html", Body: "<p>Hallo &amp; Tsch&uuml;ss</p>", BodyHTML: true,
		Attachments: []Attachment{{Name: "a.pdf", ContentType: "application/pdf", Content: []byte("%PDF")}}})
	msg := "/v1.0/users/" + DefaultMailbox + "/messages/" + url.PathEscape(id)
	tests := []struct {
		name  string
		path  string
		hdr   map[string]string
		check func(t *testing.T, b map[string]any)
	}{
		{name: "expand attachments with nested select", path: msg + "?$expand=" + url.QueryEscape("attachments($select=id,name,size)"),
			check: func(t *testing.T, b map[string]any) {
				atts, _ := b["attachments"].([]any)
				if len(atts) != 1 || atts[0].(map[string]any)["name"] != "a.pdf" || atts[0].(map[string]any)["contentBytes"] != nil {
					t.Errorf("attachments %v", b["attachments"])
				}
			}},
		{name: "expand in list", path: "/v1.0/users/" + DefaultMailbox + "/mailFolders/inbox/messages?$expand=attachments",
			check: func(t *testing.T, b map[string]any) {
				m := b["value"].([]any)[0].(map[string]any)
				if atts, _ := m["attachments"].([]any); len(atts) != 1 || atts[0].(map[string]any)["contentBytes"] == nil {
					t.Errorf("attachments %v", m["attachments"])
				}
			}},
		{name: "body as text", path: msg, hdr: map[string]string{"Prefer": `outlook.body-content-type="text"`},
			check: func(t *testing.T, b map[string]any) {
				body := b["body"].(map[string]any)
				if body["contentType"] != "text" || body["content"] != "Hallo & Tschüss" {
					t.Errorf("body %v", body)
				}
			}},
		{name: "shared mailbox is a disabled user", path: "/v1.0/users/" + DefaultMailbox,
			check: func(t *testing.T, b map[string]any) {
				if b["userPrincipalName"] != DefaultMailbox || b["accountEnabled"] != false {
					t.Errorf("user %v", b)
				}
			}},
		{name: "memberOf", path: "/v1.0/me/memberOf",
			check: func(t *testing.T, b map[string]any) {
				g := b["value"].([]any)
				if len(g) != 1 || g[0].(map[string]any)["displayName"] != DefaultGroupName {
					t.Errorf("memberOf %v", g)
				}
			}},
		{name: "userinfo", path: "/oidc/userinfo",
			check: func(t *testing.T, b map[string]any) {
				if b["email"] != DefaultUser || b["sub"] == nil {
					t.Errorf("userinfo %v", b)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, s, "GET", tt.path, access, nil, tt.hdr)
			if a.status != 200 {
				t.Fatalf("%d %s", a.status, truncate(a.body))
			}
			tt.check(t, a.json(t))
		})
	}
}

func TestDeltaChangeTypeAndFilter(t *testing.T) {
	s := NewServer()
	defer s.Close()
	access, _ := userToken(t, s, DefaultUser)
	base := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	ids := deliverN(t, s, DefaultMailbox, 4, base) // 08:00 … 08:03
	folder := "/v1.0/users/" + DefaultMailbox + "/mailFolders/inbox/messages/delta"
	since := "$filter=" + url.QueryEscape("receivedDateTime ge 2026-11-01T08:02:00Z")
	tests := []struct {
		name               string
		query              string
		initial            int
		wantIDs, wantGones int
	}{
		// After the initial round: ids[0] read (old, outside the filter),
		// ids[3] moved out, one new message.
		{name: "all changes with filter", query: since, initial: 2, wantIDs: 2, wantGones: 1},
		{name: "created only", query: "changeType=created", initial: 4, wantIDs: 1},
		{name: "updated only", query: "changeType=updated", initial: 4, wantIDs: 1},
		{name: "deleted only", query: "changeType=deleted", initial: 4, wantGones: 1},
	}
	links := make([]string, len(tests))
	for i, tt := range tests {
		p, a := getDelta(t, s, folder+"?"+tt.query, access, nil)
		if a.status != http.StatusOK || len(p.ids) != tt.initial {
			t.Fatalf("%s: initial %d ids (status %d), want %d", tt.name, len(p.ids), a.status, tt.initial)
		}
		links[i] = p.deltaLink
	}
	read := map[string]any{"isRead": true}
	if a := do(t, s, "PATCH", "/v1.0/users/"+DefaultMailbox+"/messages/"+url.PathEscape(ids[0]), access, jsonBody(read), nil); a.status != 200 {
		t.Fatal(a.status)
	}
	if _, err := s.MoveMessage(DefaultMailbox, ids[3], "archive"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deliver(DefaultMailbox, Mail{Subject: "neu", ReceivedAt: base.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, a := getDelta(t, s, links[i], access, nil)
			if a.status != http.StatusOK || len(p.ids) != tt.wantIDs || len(p.removed) != tt.wantGones {
				t.Errorf("%d ids, %d removed (status %d); want %d, %d", len(p.ids), len(p.removed), a.status, tt.wantIDs, tt.wantGones)
			}
		})
	}
}
