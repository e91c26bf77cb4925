package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/connector/graphtest"
)

// cliConnect connects to a mailgate's embedded NATS as the CLI does, with
// the CLI credentials in its data directory.
func cliConnect(t *testing.T, natsURL, dataDir string) *nats.Conn {
	t.Helper()
	auth, err := nats.NkeyOptionFromSeed(filepath.Join(dataDir, "nats-auth", "cli.nk"))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(natsURL, auth)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestNATSAuthEndToEnd attacks a running mailgate's embedded NATS as a
// local process without credentials would, and checks that the operator's
// CLI still works with the credentials it finds in the data directory.
func TestNATSAuthEndToEnd(t *testing.T) {
	bin := mailgateBinary(t)
	dataDir := t.TempDir()
	// The demo customer's DMS identity, as an operator creates it.
	if out := runCLI(t, bin, []string{"MAILGATE_DATA_DIR=" + dataDir}, "dms-credentials", demoCustomer); !strings.Contains(out, dmsConsumer(demoCustomer)) {
		t.Errorf("dms-credentials printed:\n%s", out)
	}
	_, base, password, _, natsURL := startDemo(t, bin, dataDir)
	if !strings.HasPrefix(natsURL, "nats://127.0.0.1:") {
		t.Errorf("embedded NATS listens at %s, want loopback", natsURL)
	}

	t.Run("credentials are private", func(t *testing.T) {
		dir := filepath.Join(dataDir, "nats-auth")
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s has mode %v, want 0700", dir, fi.Mode().Perm())
		}
		n := 0
		err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			n++
			info, err := d.Info()
			if err != nil {
				return err
			}
			if info.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s has mode %v: readable beyond its owner", path, info.Mode().Perm())
			}
			return nil
		})
		if err != nil || n != 3 {
			t.Errorf("walk %s: %v, %d credential files, want 3", dir, err, n)
		}
	})

	t.Run("anonymous client refused", func(t *testing.T) {
		nc, err := nats.Connect(natsURL, nats.Timeout(5*time.Second))
		if err == nil {
			defer nc.Close()
			// Had it connected: could it read state or events?
			_, kvErr := nc.Request("$JS.API.STREAM.MSG.GET.KV_connections", []byte(`{"last_by_subj":"$KV.connections.>"}`), 2*time.Second)
			t.Fatalf("anonymous connect accepted (KV read: %v)", kvErr)
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("anonymous connect: %v, want an authorization violation", err)
		}
	})

	t.Run("unknown nkey refused", func(t *testing.T) {
		kp, _ := nkeys.CreateUser()
		seed, _ := kp.Seed()
		f := filepath.Join(t.TempDir(), "stranger.nk")
		if err := os.WriteFile(f, seed, 0o600); err != nil {
			t.Fatal(err)
		}
		auth, err := nats.NkeyOptionFromSeed(f)
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(natsURL, auth, nats.Timeout(5*time.Second))
		if err == nil {
			nc.Close()
			t.Fatal("a client with an nkey of its own making was admitted")
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("stranger's connect: %v, want an authorization violation", err)
		}
	})

	t.Run("CLI finds its credentials", func(t *testing.T) {
		env := []string{"MAILGATE_NATS_URL=" + natsURL, "MAILGATE_DATA_DIR=" + dataDir}
		out := runCLI(t, bin, env, "users", "list")
		if !strings.Contains(out, "demo") {
			t.Errorf("users list:\n%s", out)
		}
		out = runCLI(t, bin, env, "archive", "tail", "--since", "1h", "--timeout", "2s")
		_ = out // no connection yet, so no events: reading the stream without an error is the point
		// Without the data dir, the CLI is refused and says where to look.
		cmd := exec.Command(bin, "connections", "list")
		cmd.Env = append(os.Environ(), "MAILGATE_NATS_URL="+natsURL, "MAILGATE_DATA_DIR="+t.TempDir())
		b, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(b), "wants credentials") {
			t.Errorf("CLI without credentials: err %v\n%s", err, b)
		}
	})

	// A person connects a mailbox and looks at the code; then someone with
	// the CLI's credentials reads every KV bucket: neither the code nor
	// the person's session cookie is in there.
	t.Run("no code or session id in KV", func(t *testing.T) {
		b := newBrowser(t, base)
		code := connectMailboxAs(t, b, password)
		u, _ := url.Parse(base)
		var session string
		for _, c := range b.c.Jar.Cookies(u) {
			if strings.Contains(c.Name, "session") {
				session = c.Value
			}
		}
		if len(session) < 20 || len(code) < 10 {
			t.Fatalf("session cookie %q, code %q", session, code)
		}
		nc := cliConnect(t, natsURL, dataDir)
		js, _ := jetstream.New(nc)
		ctx := t.Context()
		buckets, entries := 0, 0
		for name := range js.KeyValueStoreNames(ctx).Name() {
			buckets++
			kv, err := js.KeyValue(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			keys, err := kv.ListKeys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for k := range keys.Keys() {
				e, err := kv.Get(ctx, k)
				if err != nil {
					continue // deleted meanwhile
				}
				entries++
				for _, secret := range []string{code, session} {
					if strings.Contains(k, secret) || strings.Contains(string(e.Value()), secret) {
						t.Errorf("KV %s/%s holds a code or session id", name, k)
					}
				}
			}
		}
		if buckets < 8 || entries < 5 {
			t.Errorf("scanned only %d buckets, %d entries", buckets, entries)
		}
	})

	// The demo customer's DMS identity follows its events (the connect
	// above published connection.changed) and reaches nothing else.
	t.Run("dms identity only follows its events", func(t *testing.T) {
		auth, err := nats.NkeyOptionFromSeed(dmsSeedFile(dataDir, demoCustomer))
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var asyncErrs []string
		nc, err := nats.Connect(natsURL, auth, nats.CustomInboxPrefix(dmsInboxPrefix(demoCustomer)), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			mu.Lock()
			defer mu.Unlock()
			asyncErrs = append(asyncErrs, err.Error())
		}))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		var got string
		err = archive.Subscribe(ctx, js, archive.SubscribeConfig{Durable: dmsConsumer(demoCustomer), Customer: demoCustomer, Types: []string{archive.TypeConnectionChanged}}, func(_ context.Context, d *archive.Delivery) error {
			got = d.Event.Type
			cancel()
			return nil
		})
		if got != archive.TypeConnectionChanged {
			t.Errorf("subscriber received %q (err %v), want a connection.changed event", got, err)
		}
		short, cancel2 := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel2()
		if _, err := js.KeyValue(short, "connections"); err == nil {
			t.Error("subscriber opened KV connections")
		}
		if _, err := nc.Request("$JS.API.DIRECT.GET.KV_sessions", []byte(`{"last_by_subj":"$KV.sessions.>"}`), 2*time.Second); err == nil {
			t.Error("subscriber read KV sessions")
		}
		if _, err := nc.Request("mailgatectl.redeem", []byte(`{}`), 2*time.Second); err == nil {
			t.Error("subscriber reached the control service")
		}
		// Nor may it listen to other clients' replies (mailgate's KV reads).
		if _, err := nc.SubscribeSync("_INBOX.>"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			_ = nc.Flush()
			mu.Lock()
			got := strings.Join(asyncErrs, "; ")
			mu.Unlock()
			if strings.Contains(strings.ToLower(got), `permissions violation for subscription to "_inbox.>"`) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("subscriber subscribed to _INBOX.> without a permissions violation (errors: %s)", got)
				break
			}
		}
	})
}

// TestControlServiceEndToEnd attacks the control service through which the
// CLI asks a running portal to redeem, test and add connections: callers
// without the installation's key are refused, a recorded request cannot
// be replayed, the client secret of add-app never crosses NATS in plain
// text, and failed redeems are rate limited as in the DMS API.
func TestControlServiceEndToEnd(t *testing.T) {
	bin := mailgateBinary(t)
	dataDir := t.TempDir()
	_, _, _, _, natsURL := startDemo(t, bin, dataDir)
	env := []string{"MAILGATE_NATS_URL=" + natsURL, "MAILGATE_DATA_DIR=" + dataDir}

	// Watch the wire as an insider: the service's own identity may
	// subscribe to the control subjects.
	auth, err := nats.NkeyOptionFromSeed(filepath.Join(dataDir, "nats-auth", "mailgate.nk"))
	if err != nil {
		t.Fatal(err)
	}
	spy, err := nats.Connect(natsURL, auth)
	if err != nil {
		t.Fatal(err)
	}
	defer spy.Close()
	wire := make(chan *nats.Msg, 16)
	if _, err := spy.ChanSubscribe("mailgatectl.>", wire); err != nil {
		t.Fatal(err)
	}
	replies := make(chan *nats.Msg, 16)
	if _, err := spy.ChanSubscribe("_INBOX.>", replies); err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}

	const secret = graphtest.DefaultClientSecret
	cmd := exec.Command(bin, "connections", "add-app", "--customer", "firma", "--tenant", graphtest.DefaultTenantID,
		"--client-id", graphtest.DefaultClientID, "--client-secret-file", "-", "--mailbox", graphtest.DefaultMailbox)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(secret + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "is active") {
		t.Fatalf("connections add-app: %v\n%s", err, out)
	}
	var request *nats.Msg
	select {
	case request = <-wire:
	case <-time.After(10 * time.Second):
		t.Fatal("no add-app request seen on the wire")
	}
	if request.Subject != "mailgatectl.add-app" {
		t.Fatalf("request on %s", request.Subject)
	}
	for _, plain := range []string{secret, "clientSecret", graphtest.DefaultClientID, "firma"} {
		if strings.Contains(string(request.Data), plain) {
			t.Errorf("add-app request on the wire contains %q in plain text", plain)
		}
	}
	select {
	case reply := <-replies:
		if strings.Contains(string(reply.Data), secret) || strings.Contains(string(reply.Data), graphtest.DefaultMailbox) {
			t.Errorf("answer on the wire in plain text: %.200s", reply.Data)
		}
	case <-time.After(10 * time.Second):
		t.Error("no answer seen on the wire")
	}

	// The CLI's own NATS identity, without the key.
	var asyncErrs []error
	var mu sync.Mutex
	cli, err := nats.Connect(natsURL, cliAuth(t, dataDir), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		mu.Lock()
		defer mu.Unlock()
		asyncErrs = append(asyncErrs, err)
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ask := func(subject string, data []byte) string {
		t.Helper()
		msg, err := cli.Request(subject, data, 30*time.Second)
		if err != nil {
			t.Fatalf("request %s: %v", subject, err)
		}
		return string(msg.Data)
	}
	if got := ask("mailgatectl.redeem", []byte(`{"actor":"cli","customer":"firma","code":"ABCD-EFGH"}`)); !strings.Contains(got, "not sealed with this installation") {
		t.Errorf("unsealed redeem answered %s", got)
	}
	if got := ask("mailgatectl.add-app", request.Data); !strings.Contains(got, "replay") {
		t.Errorf("replayed add-app answered %s", got)
	}
	list := runCLI(t, bin, env, "connections", "list")
	if n := strings.Count(list, graphtest.DefaultMailbox); n != 1 {
		t.Errorf("%d connections after the replay, want 1:\n%s", n, list)
	}
	// Nor may the CLI identity listen on the control subjects.
	if _, err := cli.SubscribeSync("mailgatectl.>"); err != nil {
		t.Fatal(err)
	}
	_ = cli.Flush()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		got := fmt.Sprint(asyncErrs)
		mu.Unlock()
		if strings.Contains(strings.ToLower(got), "permissions violation") {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("CLI identity subscribed to mailgatectl.> without a permissions violation (errors: %s)", got)
			break
		}
		_ = cli.Flush() // the violation arrives as an asynchronous -ERR
	}

	// A caller with another key is refused.
	other := exec.Command(bin, "connections", "redeem", "ABCD-EFGH-JKLM", "--customer", "firma")
	other.Env = append(os.Environ(), append(env, "MAILGATE_SECRET_KEY=MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=")...)
	if out, err := other.CombinedOutput(); err == nil || !strings.Contains(string(out), "not sealed with this installation") {
		t.Errorf("redeem with a foreign key: %v\n%s", err, out)
	}

	// Failed redeems are limited as in the DMS API: five, then a wait.
	var last string
	for i := 0; i < 6; i++ {
		c := exec.Command(bin, "connections", "redeem", fmt.Sprintf("WRNG-CODE-%04d", i), "--customer", "firma")
		c.Env = append(os.Environ(), env...)
		out, err := c.CombinedOutput()
		if err == nil {
			t.Fatalf("wrong code %d redeemed:\n%s", i, out)
		}
		last = string(out)
		if i < 5 && !strings.Contains(last, "invalid, expired or used") {
			t.Errorf("wrong code %d: %s", i, last)
		}
	}
	if !strings.Contains(last, "too many failed attempts") {
		t.Errorf("sixth wrong code: %s, want the rate limit", last)
	}
}

// cliAuth is the CLI's NATS credential in dataDir.
func cliAuth(t *testing.T, dataDir string) nats.Option {
	t.Helper()
	auth, err := nats.NkeyOptionFromSeed(filepath.Join(dataDir, "nats-auth", "cli.nk"))
	if err != nil {
		t.Fatal(err)
	}
	return auth
}

// TestUnboundSecretsBoundAtStart upgrades as an operator would: a
// connection whose client secret an earlier version sealed unbound, then
// `mailgate serve`. At start the secret is stored sealed for its
// connection, and the connection still imports.
func TestUnboundSecretsBoundAtStart(t *testing.T) {
	bin := mailgateBinary(t)
	in := newStack(t, stack{archive: dirArchive})
	c := in.addAppConnection(t, "firma", graphtest.DefaultMailbox) // sealed by Seal: unbound
	sealer, err := connector.NewSealer(in.key)
	if err != nil {
		t.Fatal(err)
	}
	if _, reseal, err := sealer.OpenFor(c.Customer, c.ID, c.ClientSecret); err != nil || !reseal {
		t.Fatalf("the test's secret is not in the old form: reseal %v, %v", reseal, err)
	}
	in.deliverInvoices(t, graphtest.DefaultMailbox, 2)
	p := startProc(t, bin, append(in.env(), "MAILGATE_REPLICA=upgrade"), "serve", "--role", "importer")
	in.waitDistinct(t, 2, time.Minute)
	p.stop()
	store, err := connector.NewStore(t.Context(), in.js, connector.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := store.Get(t.Context(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if plain, reseal, err := sealer.OpenFor(got.Customer, got.ID, got.ClientSecret); err != nil || reseal || string(plain) != graphtest.DefaultClientSecret {
		t.Errorf("after start: reseal %v, err %v; want the secret bound to %s", reseal, err, c.ID)
	}
	if _, _, err := sealer.OpenFor("evil", got.ID, got.ClientSecret); err == nil {
		t.Error("the bound secret opens for another customer")
	}
	if !strings.Contains(p.stderr(), "sealed secrets bound to their connections") {
		t.Error("serve did not log the binding")
	}
}
