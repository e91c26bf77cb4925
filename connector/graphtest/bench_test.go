package graphtest

import (
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// BenchmarkAttachmentValue measures streaming a 20 MB attachment.
func BenchmarkAttachmentValue(b *testing.B) {
	s := NewServer()
	defer s.Close()
	tok := s.signJWT(map[string]any{"aud": graphResource, "exp": time.Now().Add(time.Hour).Unix(), "tid": DefaultTenantID,
		"oid": servicePrincipalID(DefaultTenantID, DefaultClientID), "roles": []string{"Mail.ReadWrite"}, "appid": DefaultClientID, "idtyp": "app"})
	content := make([]byte, 20<<20)
	id, _ := s.Deliver(DefaultMailbox, Mail{Subject: "big", Attachments: []Attachment{{Name: "big.pdf", Content: content}}})
	s.mu.Lock()
	attID := s.mailboxByAddress(DefaultMailbox).message(id).attachments[0].id
	s.mu.Unlock()
	u := s.GraphURL() + "/users/" + DefaultMailbox + "/messages/" + url.PathEscape(id) + "/attachments/" + url.PathEscape(attID) + "/$value"
	b.SetBytes(int64(len(content)))
	b.ResetTimer()
	for b.Loop() {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n != int64(len(content)) {
			b.Fatalf("%d bytes", n)
		}
	}
}

// BenchmarkDeltaRound measures a full initial delta round over 1,000
// messages in pages of 100.
func BenchmarkDeltaRound(b *testing.B) {
	s := NewServer()
	defer s.Close()
	tok := s.signJWT(map[string]any{"aud": graphResource, "exp": time.Now().Add(time.Hour).Unix(), "tid": DefaultTenantID,
		"oid": servicePrincipalID(DefaultTenantID, DefaultClientID), "roles": []string{"Mail.ReadWrite"}, "appid": DefaultClientID, "idtyp": "app"})
	for range 1000 {
		_, _ = s.Deliver(DefaultMailbox, Mail{Subject: "m", From: "a@example.com"})
	}
	start := s.GraphURL() + "/users/" + DefaultMailbox + "/mailFolders/inbox/messages/delta?$select=subject,internetMessageId,hasAttachments"
	for b.Loop() {
		link, pages := start, 0
		for link != "" {
			req, _ := http.NewRequest("GET", link, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Prefer", "odata.maxpagesize=100")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			var body struct {
				Next string `json:"@odata.nextLink"`
			}
			if err := decodeJSON(resp.Body, &body); err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			link = body.Next
			pages++
		}
		if pages != 10 {
			b.Fatalf("%d pages", pages)
		}
	}
}
