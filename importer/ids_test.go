package importer

import (
	"regexp"
	"testing"
	"time"
)

func TestDocumentID(t *testing.T) {
	base := DocumentID("acme", "con_1", "<m@x>", "ab12", "RE.pdf")
	if !regexp.MustCompile(`^doc_[a-z2-7]{26}$`).MatchString(base) {
		t.Fatalf("format %q", base)
	}
	if DocumentID("acme", "con_1", "<m@x>", "AB12", "RE.pdf") != base {
		t.Error("hex case changes the id")
	}
	others := []string{
		DocumentID("acme2", "con_1", "<m@x>", "ab12", "RE.pdf"),
		DocumentID("acme", "con_2", "<m@x>", "ab12", "RE.pdf"),
		DocumentID("acme", "con_1", "<n@x>", "ab12", "RE.pdf"),
		DocumentID("acme", "con_1", "<m@x>", "ab13", "RE.pdf"),
		DocumentID("acme", "con_1", "<m@x>", "ab12", "RE2.pdf"),
		DocumentID("acm", "econ_1", "<m@x>", "ab12", "RE.pdf"), // no concatenation collisions
	}
	for i, o := range others {
		if o == base {
			t.Errorf("variant %d has the same id", i)
		}
	}
	if got := DocumentID("acme", "con_1", "<m@x>", "ab12", "RE.pdf"); got != "doc_"+hashID("acme", "con_1", "<m@x>", "ab12", "RE.pdf") {
		t.Errorf("unstable id %q", got)
	}
}

func TestKVToken(t *testing.T) {
	for in, want := range map[string]string{"con_abc-1": "con_abc-1", "": "h_" + hashID(""), "a.b": "h_" + hashID("a.b"), "ä": "h_" + hashID("ä")} {
		if got := kvToken(in); got != want {
			t.Errorf("kvToken(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBackoffDelay(t *testing.T) {
	tests := []struct {
		attempt int
		rand    float64
		want    time.Duration
	}{
		{1, 0, 500 * time.Millisecond},
		{1, 0.999999, time.Second},
		{2, 0, time.Second},
		{3, 0.5, 3 * time.Second},
		{0, 0, 500 * time.Millisecond},
		{40, 0, 15 * time.Minute}, // capped at max
		{40, 1, 30 * time.Minute},
	}
	for _, tt := range tests {
		b := backoff{base: time.Second, max: 30 * time.Minute, rand: func() float64 { return tt.rand }}
		if got := b.delay(tt.attempt); got.Round(time.Millisecond) != tt.want {
			t.Errorf("delay(%d, rand %v) = %v, want %v", tt.attempt, tt.rand, got, tt.want)
		}
	}
}
