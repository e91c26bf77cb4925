package graph

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/connector"
)

// TestStalledBodyIsCutOff: a list with the bytes that stops sending in
// the middle of an attachment is cut off after bodyIdleTimeout (Transient,
// so the importer falls back), and the Content begun is closed; a body
// that keeps coming, however slowly, is read to its end.
func TestStalledBodyIsCutOff(t *testing.T) {
	old := bodyIdleTimeout
	bodyIdleTimeout = 300 * time.Millisecond
	t.Cleanup(func() { bodyIdleTimeout = old })
	const head = `{"value":[{"@odata.type":"#microsoft.graph.fileAttachment","id":"a","name":"RE-1.pdf","size":6,"contentBytes":"`
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, head)
		w.(http.Flusher).Flush()
		if strings.HasSuffix(r.URL.Path, "/stalled/attachments") {
			<-r.Context().Done()
			return
		}
		for _, part := range []string{"QUJD", "REVG", `"}]}`} {
			time.Sleep(150 * time.Millisecond) // each within the idle timeout, all of them beyond it
			io.WriteString(w, part)
			w.(http.Flusher).Flush()
		}
	})
	mb := newFakeClient(t, h, Config{}).Mailbox("a@b", staticToken)

	var s memSink
	t0 := time.Now()
	_, err := mb.Attachments(t.Context(), "stalled", s.sink)
	if !connector.IsKind(err, connector.Transient) || !strings.Contains(err.Error(), errBodyIdle.Error()) {
		t.Errorf("stalled list: %v, want Transient %q", err, errBodyIdle)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("the stalled list was cut off after %s", d)
	}
	if s.made != s.closed {
		t.Errorf("%d contents made, %d closed", s.made, s.closed)
	}

	atts, err := mb.Attachments(t.Context(), "slow", s.sink)
	if err != nil || len(atts) != 1 {
		t.Fatalf("slow list: %v, %+v", err, atts)
	}
	if mc := atts[0].Data.(*memContent); string(mc.b) != "ABCDEF" {
		t.Errorf("slow list's bytes = %q", mc.b)
	}
}
