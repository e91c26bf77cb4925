package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mailgate/mailgate/connector/graphtest"
)

// TestCLIIdentityAttacker attacks a running demo's control service with
// the cli identity's seed and no secret key, as issue 25 found it
// possible: record the operator's sealed add-app request with a stream on
// "mailgatectl.>", forget the accepted request ids by purging KV
// "control", then replay the request within its window. Each step is
// refused, the replay meets its id, and no second connection appears;
// the CLI, bound to the existing buckets, still works.
func TestCLIIdentityAttacker(t *testing.T) {
	bin := mailgateBinary(t)
	dataDir := t.TempDir()
	_, _, _, _, natsURL := startDemo(t, bin, dataDir)
	env := []string{"MAILGATE_NATS_URL=" + natsURL, "MAILGATE_DATA_DIR=" + dataDir}

	// The request to replay, recorded as an insider would (the service's
	// identity may listen on the control subjects; the cli's may not).
	spyAuth, err := nats.NkeyOptionFromSeed(filepath.Join(dataDir, "nats-auth", "mailgate.nk"))
	if err != nil {
		t.Fatal(err)
	}
	spy, err := nats.Connect(natsURL, spyAuth)
	if err != nil {
		t.Fatal(err)
	}
	defer spy.Close()
	wire := make(chan *nats.Msg, 4)
	if _, err := spy.ChanSubscribe(controlSubject+".add-app", wire); err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "connections", "add-app", "--customer", "firma", "--tenant", graphtest.DefaultTenantID,
		"--client-id", graphtest.DefaultClientID, "--client-secret-file", "-", "--mailbox", graphtest.DefaultMailbox)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(graphtest.DefaultClientSecret + "\n")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "is active") {
		t.Fatalf("connections add-app: %v\n%s", err, out)
	}
	var recorded *nats.Msg
	select {
	case recorded = <-wire:
	case <-time.After(10 * time.Second):
		t.Fatal("no add-app request on the wire")
	}

	a := connectAttacker(t, natsURL, filepath.Join(dataDir, "nats-auth", "cli.nk"), "")
	a.refused("a stream recording the control subjects", "$JS.API.STREAM.CREATE.RECORD", func(ctx context.Context) error {
		return a.request(ctx, "$JS.API.STREAM.CREATE.RECORD", `{"name":"RECORD","subjects":["mailgatectl.>"],"storage":"memory"}`)
	})
	for _, stream := range []string{"KV_control", "MAILGATE"} {
		a.refused("adding the control subjects to "+stream, "$JS.API.STREAM.UPDATE."+stream, func(ctx context.Context) error {
			return a.request(ctx, "$JS.API.STREAM.UPDATE."+stream, `{"name":"`+stream+`","subjects":["mailgatectl.>"]}`)
		})
	}
	a.refused("purging KV control", "$JS.API.STREAM.PURGE.KV_control", func(ctx context.Context) error {
		return a.request(ctx, "$JS.API.STREAM.PURGE.KV_control", `{}`)
	})
	a.refused("deleting KV control", "$JS.API.STREAM.DELETE.KV_control", func(ctx context.Context) error {
		return a.request(ctx, "$JS.API.STREAM.DELETE.KV_control", ``)
	})
	a.refused("removing a message of KV control", "$JS.API.STREAM.MSG.DELETE.KV_control", func(ctx context.Context) error {
		return a.request(ctx, "$JS.API.STREAM.MSG.DELETE.KV_control", `{"seq":1,"no_erase":true}`)
	})
	a.refused("a rollup purging KV control's keys", "$KV.control.x", func(ctx context.Context) error {
		m := nats.NewMsg("$KV.control.x")
		m.Header.Set("KV-Operation", "PURGE")
		m.Header.Set("Nats-Rollup", "all")
		return a.nc.PublishMsg(m)
	})

	// The replay, within the window, meets its id.
	msg, err := a.nc.Request(recorded.Subject, recorded.Data, 30*time.Second)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if !strings.Contains(string(msg.Data), "replay") {
		t.Errorf("replayed add-app answered %s, want refused as a replay", msg.Data)
	}
	list := runCLI(t, bin, env, "connections", "list")
	if n := strings.Count(list, graphtest.DefaultMailbox); n != 1 {
		t.Errorf("%d connections after the replay, want 1:\n%s", n, list)
	}
}
