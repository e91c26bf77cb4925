package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestEventFeedThroughTheBinary reads the pull feed (GET /api/v1/events)
// of the built binary as an on-premises DMS would: 1,000 events of its
// customer among 300 of another, in pages, with the binary restarted
// half way. Every event comes once, in the order published; the other
// customer's key gets only its own; a key of neither gets nothing.
func TestEventFeedThroughTheBinary(t *testing.T) {
	bin := mailgateBinary(t)
	dataDir := t.TempDir()
	p, base, _, _, natsURL := startDemo(t, bin, dataDir)
	env := []string{"MAILGATE_NATS_URL=" + natsURL, "MAILGATE_DATA_DIR=" + dataDir}
	ours := strings.TrimSpace(runCLI(t, bin, env, "apikeys", "create", "--customer", demoCustomer, "--name", "feed dms"))
	theirs := strings.TrimSpace(runCLI(t, bin, env, "apikeys", "create", "--customer", "globex", "--name", "globex dms"))

	// The events, published as mailgate publishes them: one subject per
	// customer, de-duplicated by id. (The demo's own mails publish none:
	// no connection is redeemed here.)
	nc := cliConnect(t, natsURL, dataDir)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 1300 {
		customer, id := demoCustomer, fmt.Sprintf("ev-%04d", i)
		if r := i % 13; r == 3 || r == 7 || r == 11 {
			customer, id = "globex", fmt.Sprintf("gx-%04d", i)
		} else {
			want = append(want, id)
		}
		body := fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"mailgate/%s/c1","type":"mailgate.document.imported","data":{"customer":%q}}`, id, customer, customer)
		msg := &nats.Msg{Subject: "mailgate." + customer + ".document.imported", Data: []byte(body), Header: nats.Header{"Nats-Msg-Id": {id}}}
		if _, err := js.PublishMsg(t.Context(), msg); err != nil {
			t.Fatal(err)
		}
	}
	nc.Close()
	if len(want) != 1000 {
		t.Fatalf("published %d events of %s, want 1000", len(want), demoCustomer)
	}

	var got []string
	cursor := ""
	read := func(base, key string, pages int) {
		for range pages {
			ids, next := feedPage(t, base, key, cursor, 97)
			if len(ids) == 0 {
				return
			}
			got = append(got, ids...)
			cursor = next
		}
	}
	read(base, ours, 5)
	if len(got) == 0 || len(got) >= len(want) {
		t.Fatalf("%d events before the restart", len(got))
	}
	p.stop()
	_, base, _, _, _ = startDemo(t, bin, dataDir)
	read(base, ours, 100)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("the feed gave %d events (first %v), want the %d published, once each and in order", len(got), got[:min(5, len(got))], len(want))
	}

	// The other customer's key: its own 300 and nothing of ours.
	got, cursor = nil, ""
	read(base, theirs, 100)
	if len(got) != 300 {
		t.Errorf("globex's key got %d events (%v…), want its 300", len(got), got[:min(3, len(got))])
	}
	for _, id := range got {
		if !strings.HasPrefix(id, "gx-") {
			t.Fatalf("globex's key got %s, an event of %s", id, demoCustomer)
		}
	}
	// No key, a made-up key: nothing.
	for _, key := range []string{"", "mgk_not-a-key"} {
		req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/events?limit=10", nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("key %q: %s, want 401", key, resp.Status)
		}
	}
}

// feedPage reads one page of the feed after cursor and returns the
// events' ids and the next cursor.
func feedPage(t *testing.T, base, key, after string, limit int) ([]string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/v1/events?after=%s&limit=%d", base, after, limit), nil)
	req.Header.Set("Authorization", "Bearer "+key)
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("feed after %q: %s", after, resp.Status)
	}
	var page struct {
		Events []struct {
			Cursor string          `json:"cursor"`
			Event  json.RawMessage `json:"event"`
		} `json:"events"`
		Cursor string `json:"cursor"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range page.Events {
		var ev struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(e.Event, &ev); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
	}
	return ids, page.Cursor
}
