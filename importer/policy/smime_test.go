package policy

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

// The fixtures under testdata/smime are written by testdata/smime/gen.sh
// with OpenSSL: one mail (a text body, a ZUGFeRD PDF and a plain PDF)
// signed in each way S/MIME mail arrives, and encrypted.
func TestUnpackSMIME(t *testing.T) {
	zugferd := fixture(t, "zugferd.pdf", nil)
	plain := fixture(t, "minimal.pdf", nil)
	for _, f := range []string{"clear-signed.eml", "opaque-der.p7m", "opaque-ber.p7m", "opaque-smime.eml"} {
		t.Run(f, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "smime", f))
			if err != nil {
				t.Fatal(err)
			}
			parts, err := UnpackSMIME(context.Background(), bytes.NewReader(b))
			if err != nil {
				t.Fatalf("UnpackSMIME: %v", err)
			}
			if len(parts) != 2 || parts[0].Name != "RE-FX-1.pdf" || parts[1].Name != "Lieferschein.pdf" {
				t.Fatalf("parts %v", partNames(parts))
			}
			if !bytes.Equal(parts[0].Content, zugferd) || !bytes.Equal(parts[1].Content, plain) {
				t.Fatal("part content differs from the file that was signed")
			}
			d, err := New(Config{}).Classify(context.Background(), connector.Attachment{Type: connector.FileAttachment, Name: parts[0].Name},
				"", int64(len(parts[0].Content)), bytes.NewReader(parts[0].Content))
			if err != nil || d.Kind != archive.KindZUGFeRD {
				t.Errorf("the signed ZUGFeRD PDF: %+v, %v", d, err)
			}
		})
	}
	b, err := os.ReadFile(filepath.Join("testdata", "smime", "encrypted.p7m"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnpackSMIME(context.Background(), bytes.NewReader(b)); !errors.Is(err, ErrSMIMEEncrypted) {
		t.Errorf("encrypted: err = %v, want ErrSMIMEEncrypted", err)
	}
	// Broken input is an error, never a panic.
	der, _ := os.ReadFile(filepath.Join("testdata", "smime", "opaque-ber.p7m"))
	for _, bad := range [][]byte{nil, []byte("hello"), der[:len(der)/2], {0x30, 0x80}, {0x30, 0x84, 0xff, 0xff, 0xff, 0xff}} {
		if _, err := UnpackSMIME(context.Background(), bytes.NewReader(bad)); err == nil {
			t.Errorf("UnpackSMIME(context.Background(), %q…) = nil error", bad[:min(len(bad), 8)])
		}
	}
}

func partNames(pp []Part) []string {
	var out []string
	for _, p := range pp {
		out = append(out, p.Name)
	}
	return out
}

func TestIsSMIME(t *testing.T) {
	for _, tt := range []struct {
		name, ct string
		want     bool
	}{
		{"smime.p7m", "application/pkcs7-mime; smime-type=signed-data", true},
		{"smime.p7m", "", true},
		{"SMIME.P7M", "application/octet-stream", true},
		{"x", "multipart/signed; protocol=\"application/pkcs7-signature\"", true},
		{"x", "application/x-pkcs7-mime", true},
		{"smime.p7s", "application/pkcs7-signature", false},
		{"rechnung.pdf", "application/pdf", false},
	} {
		if got := IsSMIME(tt.name, tt.ct); got != tt.want {
			t.Errorf("IsSMIME(%q, %q) = %v", tt.name, tt.ct, got)
		}
	}
}

func FuzzUnpackSMIME(f *testing.F) {
	for _, name := range []string{"opaque-ber.p7m", "clear-signed.eml"} {
		b, err := os.ReadFile(filepath.Join("testdata", "smime", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x30, 0x80, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02, 0xA0, 0x80, 0, 0, 0, 0})
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Disposition: attachment; filename=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n--b--\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		cpuBound(t, len(in), func() {
			parts, err := UnpackSMIME(context.Background(), bytes.NewReader(in))
			if err == nil && len(parts) > maxMIMEParts {
				t.Fatalf("%d parts", len(parts))
			}
		})
	})
}
