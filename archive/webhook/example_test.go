package webhook_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/mailgate/mailgate/archive/webhook"
)

// A DMS's receiver: verify, store idempotently by webhook-id, answer 2xx.
func ExampleVerify() {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // from the registration
	seen := map[string]bool{}
	receiver := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil || webhook.Verify(secret, r.Header, body, time.Now(), 5*time.Minute) != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if id := r.Header.Get("webhook-id"); !seen[id] {
			seen[id] = true // store the event in the DMS here
		}
		w.WriteHeader(http.StatusNoContent)
	})

	body := `{"specversion":"1.0","id":"doc-1","type":"mailgate.document.imported"}`
	ts := time.Now().Unix()
	sig, _ := webhook.Sign(secret, "doc-1", ts, []byte(body))
	for _, s := range []string{sig, "v1,forged"} {
		req := httptest.NewRequest(http.MethodPost, "/mailgate", strings.NewReader(body))
		req.Header.Set("webhook-id", "doc-1")
		req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
		req.Header.Set("webhook-signature", s)
		rec := httptest.NewRecorder()
		receiver.ServeHTTP(rec, req)
		fmt.Println(rec.Code)
	}
	// Output:
	// 204
	// 401
}
