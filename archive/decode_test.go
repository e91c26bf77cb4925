package archive_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/archive"
)

const validImported = `{"specversion":"1.0","id":"doc-1","source":"mailgate/acme/conn-1","type":"mailgate.document.imported","time":"2026-03-09T08:00:00Z","datacontenttype":"application/json",
"data":{"customer":"acme","connection":"conn-1","mailbox":"rechnungen@firma.de","message":{"internetMessageId":"<a@b>","from":"x@y","subject":"Rechnung","receivedAt":"2026-03-09T07:59:00Z"},
"document":{"name":"RE-2026-001.pdf","size":12345,"sha256":"ab","contentType":"application/pdf","declaredContentType":"application/octet-stream","kind":"pdf"},"object":{"bucket":"b","key":"acme/2026/03/ab.pdf"}}}`

func TestDecode(t *testing.T) {
	replace := func(old, new string) string { return strings.Replace(validImported, old, new, 1) }
	tests := []struct {
		name    string
		in      string
		wantErr string // "" = valid
	}{
		{"imported", validImported, ""},
		{"skipped", `{"specversion":"1.0","id":"d","source":"s","type":"mailgate.document.skipped","data":{"customer":"acme","reason":"too_small","size":3}}`, ""},
		{"connection changed", `{"specversion":"1.0","id":"c","source":"s","type":"mailgate.connection.changed","data":{"customer":"acme","connection":"c1","to":"active","action":"redeem"}}`, ""},
		{"unknown data fields are ignored", replace(`"customer":"acme"`, `"customer":"acme","future":1`), ""},
		{"wrong specversion", replace(`"1.0"`, `"0.3"`), "specversion"},
		{"unknown type", replace("document.imported", "document.exploded"), "unknown type"},
		{"missing id", replace(`"id":"doc-1",`, ""), "missing id"},
		{"missing source", replace(`"source":"mailgate/acme/conn-1",`, ""), "missing id or source"},
		{"xml data", replace(`"application/json"`, `"application/xml"`), "datacontenttype"},
		{"null data", `{"specversion":"1.0","id":"d","source":"s","type":"mailgate.document.imported","data":null}`, "not an object"},
		{"array data", `{"specversion":"1.0","id":"d","source":"s","type":"mailgate.document.imported","data":[]}`, "not an object"},
		{"no customer", replace(`"customer":"acme",`, ""), "missing customer"},
		{"bad size type", replace(`"size":12345`, `"size":"big"`), "cannot unmarshal"},
		{"not json", `{"specversion":`, "decode event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := archive.Decode([]byte(tt.in))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				switch ev.Type {
				case archive.TypeImported:
					d, ok := ev.Data.(*archive.Imported)
					if !ok || d.Document.Size != 12345 || d.Object.Key != "acme/2026/03/ab.pdf" || d.Message.Subject != "Rechnung" {
						t.Errorf("data = %#v", ev.Data)
					}
					if ev.Time.IsZero() {
						t.Error("time not decoded")
					}
				case archive.TypeSkipped:
					if d, ok := ev.Data.(*archive.Skipped); !ok || d.Reason != archive.ReasonTooSmall {
						t.Errorf("data = %#v", ev.Data)
					}
				case archive.TypeConnectionChanged:
					if d, ok := ev.Data.(*archive.ConnectionChanged); !ok || d.To != "active" {
						t.Errorf("data = %#v", ev.Data)
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Decode error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// FuzzDecode checks that Decode never panics and that whatever it accepts
// survives an encode/decode round trip unchanged.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(validImported))
	f.Add([]byte(`{"specversion":"1.0","id":"d","source":"s","type":"mailgate.document.skipped","data":{"customer":"acme","reason":"too_small"}}`))
	f.Add([]byte(`{"specversion":"1.0","id":"c","source":"s","type":"mailgate.connection.changed","data":{"customer":"acme","to":"active"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := archive.Decode(data)
		if err != nil {
			return
		}
		if ev.Data == nil || ev.SpecVersion != "1.0" || ev.ID == "" {
			t.Fatalf("accepted an event without data, version or id: %+v", ev)
		}
		b1, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("marshal accepted event: %v", err)
		}
		ev2, err := archive.Decode(b1)
		if err != nil {
			t.Fatalf("re-decode of %s: %v", b1, err)
		}
		b2, err := json.Marshal(ev2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b1, b2) {
			t.Fatalf("round trip changed the event:\n%s\n%s", b1, b2)
		}
	})
}
