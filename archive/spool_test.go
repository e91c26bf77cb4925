package archive_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/mailgate/mailgate/archive"
)

func TestSpool(t *testing.T) {
	tests := []struct {
		name     string
		size     int
		memLimit int64
		wantFile bool
	}{
		{"empty", 0, 1024, false},
		{"small in memory", 100, 1024, false},
		{"exactly the limit stays in memory", 1024, 1024, false},
		{"one byte over goes to a file", 1025, 1024, true},
		{"large", 5 << 20, 64 << 10, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			body := make([]byte, tt.size)
			for i := range body {
				body[i] = byte(i * 7)
			}
			sp, err := archive.NewSpool(bytes.NewReader(body), tt.memLimit, dir)
			if err != nil {
				t.Fatal(err)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "*"))
			if (len(files) == 1) != tt.wantFile {
				t.Errorf("temp files %v, want file: %v", files, tt.wantFile)
			}
			if sp.Size() != int64(tt.size) || sp.SHA256() != sum(body) {
				t.Errorf("size %d sha %s, want %d %s", sp.Size(), sp.SHA256(), tt.size, sum(body))
			}
			if want := body[:min(len(body), 3072)]; !bytes.Equal(sp.Head(), want) {
				t.Errorf("head has %d bytes, want %d", len(sp.Head()), len(want))
			}
			for range 2 { // every Reader starts at the beginning
				got, err := io.ReadAll(sp.Reader())
				if err != nil || !bytes.Equal(got, body) {
					t.Fatalf("Reader read %d bytes, %v", len(got), err)
				}
			}
			if tt.size > 10 {
				p := make([]byte, 5)
				if _, err := sp.ReaderAt().ReadAt(p, 5); err != nil || !bytes.Equal(p, body[5:10]) {
					t.Errorf("ReadAt = %v, %v", p, err)
				}
			}
			if err := sp.Close(); err != nil {
				t.Fatal(err)
			}
			if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 0 {
				t.Errorf("Close left %v", files)
			}
		})
	}
}

func TestSpoolReadError(t *testing.T) {
	dir := t.TempDir()
	_, err := archive.NewSpool(io.MultiReader(bytes.NewReader(make([]byte, 4096)), errReader{}), 1024, dir)
	if err == nil {
		t.Fatal("NewSpool ignored a read error")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed spool left %d files", len(entries))
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrClosedPipe }
