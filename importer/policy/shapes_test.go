package policy

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"testing"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

// TestMailShapes covers attachments as real mail brings them: iPhone
// photos, archives, and signature images too large for the size rule.
func TestMailShapes(t *testing.T) {
	// An iPhone photo: an ISO base media file of brand heic.
	heic := append([]byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"), bytes.Repeat([]byte{0x5a}, 40<<10)...)
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	w, _ := zw.Create("RE-1.pdf")
	_, _ = w.Write(minimalPDF("in a zip"))
	_ = zw.Close()
	var gz bytes.Buffer
	gw := gzip.NewWriter(&gz)
	_, _ = gw.Write(minimalPDF("in a gzip"))
	_ = gw.Close()
	banner := encodePNG(t, noiseImage(600, 80, 4))  // a signature banner, > 10 KB
	photo := encodeJPEG(t, noiseImage(640, 480, 5)) // a photographed receipt
	file := func(name string) connector.Attachment {
		return connector.Attachment{Type: connector.FileAttachment, Name: name, ContentType: "application/octet-stream"}
	}
	tests := []struct {
		name    string
		att     connector.Attachment
		body    string
		content []byte
		reason  string // "" for an import
		kind    string
		ext     string
	}{
		{"heic photo", file("IMG_4711.HEIC"), "", heic, "", archive.KindImage, "heic"},
		{"zip", file("rechnungen.zip"), "", zb.Bytes(), archive.ReasonArchive, "", "zip"},
		{"gzip named pdf", file("rechnung.pdf"), "", gz.Bytes(), archive.ReasonArchive, "", "gz"},
		{"exe stays disguised", file("rechnung.pdf.exe"), "", peHeader(), archive.ReasonDisguised, "", "exe"},
		{"large banner named image001 in a plain-text reply", file("image001.png"), "", banner, archive.ReasonSignatureLogo, "", "png"},
		{"photo named image001 in a plain-text reply", file("image001.jpg"), "", photo, "", archive.KindImage, "jpg"},
		{"large banner with another name", file("Lageplan.png"), "", banner, "", archive.KindImage, "png"},
	}
	p := New(Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.content) < DefaultMinImageSize && tt.kind == archive.KindImage {
				t.Fatalf("fixture too small: %d bytes", len(tt.content))
			}
			d, err := p.Classify(context.Background(), tt.att, tt.body, int64(len(tt.content)), bytes.NewReader(tt.content))
			if err != nil {
				t.Fatal(err)
			}
			if d.Reason != tt.reason || d.Kind != tt.kind || d.Ext != tt.ext || d.Import != (tt.reason == "") {
				t.Errorf("decision %+v, want reason %q kind %q ext %q", d, tt.reason, tt.kind, tt.ext)
			}
			if !d.Import && d.Detail == "" {
				t.Error("skip without detail")
			}
		})
	}
	if len(banner) < DefaultMinImageSize {
		t.Fatalf("banner only %d bytes: the size rule alone would decide", len(banner))
	}
}

func TestLogoShaped(t *testing.T) {
	for _, tt := range []struct {
		w, h int
		want bool
	}{
		{600, 80, true}, {200, 200, true}, {500, 500, true}, {2400, 500, true},
		{640, 480, false}, {1240, 1754, false}, {3024, 4032, false}, {0, 0, false},
	} {
		if got := logoShaped(tt.w, tt.h); got != tt.want {
			t.Errorf("logoShaped(%d, %d) = %v", tt.w, tt.h, got)
		}
	}
}
