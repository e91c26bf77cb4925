package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/archive"
)

// attacker is a NATS client holding one identity's seed; it records the
// server's asynchronous permission violations.
type attacker struct {
	t    *testing.T
	nc   *nats.Conn
	js   jetstream.JetStream
	errs chan error
}

func connectAttacker(t *testing.T, url, seedFile, inboxPrefix string) *attacker {
	t.Helper()
	auth, err := natsAuth(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	a := &attacker{t: t, errs: make(chan error, 64)}
	opts := []nats.Option{auth, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case a.errs <- err:
		default:
		}
	})}
	if inboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(inboxPrefix))
	}
	if a.nc, err = nats.Connect(url, opts...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.nc.Close)
	if a.js, err = jetstream.New(a.nc); err != nil {
		t.Fatal(err)
	}
	return a
}

// refused runs an attack and asserts that the server refused it for want
// of permission: the call fails with a permissions violation, or the
// server reports one naming subject (the violation arrives as an
// asynchronous -ERR; the call itself then fails by timeout).
func (a *attacker) refused(what, subject string, attack func(ctx context.Context) error) {
	a.t.Helper()
	for len(a.errs) > 0 {
		<-a.errs
	}
	ctx, cancel := context.WithTimeout(a.t.Context(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- attack(ctx) }()
	violation := func(e error) bool {
		msg := strings.ToLower(e.Error())
		return strings.Contains(msg, "permissions violation") && strings.Contains(msg, strings.ToLower(subject))
	}
	for {
		select {
		case e := <-a.errs:
			if violation(e) {
				cancel()
				<-done
				return
			}
		case err := <-done:
			if err != nil && violation(err) {
				return
			}
			// A refused request ends by timeout; the violation may still
			// be on its way.
			_ = a.nc.Flush()
			select {
			case e := <-a.errs:
				if violation(e) {
					return
				}
			case <-time.After(2 * time.Second):
			}
			a.t.Errorf("%s: not refused (result %v)", what, err)
			return
		}
	}
}

// request sends a raw JetStream API request and returns the answer.
func (a *attacker) request(ctx context.Context, subject, body string) error {
	msg, err := a.nc.RequestWithContext(ctx, subject, []byte(body))
	if err != nil {
		return err
	}
	if strings.Contains(string(msg.Data), `"error"`) {
		return fmt.Errorf("api error: %s", msg.Data)
	}
	return nil
}

// TestDMSIdentityAttacker attacks the embedded server, started as `serve`
// starts it, with customer acme's DMS seed (written as `mailgate
// dms-credentials acme` writes it): acme follows its own events with its
// own consumer, and cannot read globex's events (plain subscription,
// consumer with another filter, message or direct get, stream info),
// cannot create, update, delete, read or pull from mailgate's durable
// consumers or acknowledge their messages, and cannot listen to other
// clients' replies.
func TestDMSIdentityAttacker(t *testing.T) {
	cfg := &Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:0"}
	for _, c := range []string{"acme", "globex"} {
		if _, err := newDMSIdentity(cfg.DataDir, c); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := startNATS(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	url := srv.ClientURL()
	ctx := t.Context()

	// mailgate itself: the stream, its own durable consumers of the kind
	// the webhook dispatcher keeps, and two events per customer.
	nc, js, err := connectNATS(ctx, cfg, url, "mailgate", log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	stream, err := archive.EnsureStream(ctx, js, archive.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	mine := map[string]jetstream.ConsumerConfig{
		"webhook_acme1": {Durable: "webhook_acme1", AckPolicy: jetstream.AckExplicitPolicy,
			FilterSubjects: []string{"mailgate.acme.document.imported", "mailgate.acme.connection.changed"}},
		"webhook_globex1": {Durable: "webhook_globex1", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: "mailgate.globex.>"},
	}
	for _, cc := range mine {
		if _, err := stream.CreateOrUpdateConsumer(ctx, cc); err != nil {
			t.Fatal(err)
		}
	}
	pub := archive.NewPublisher(js, "mailgate")
	for _, c := range []string{"acme", "globex"} {
		for i := range 2 {
			if err := pub.ConnectionChanged(ctx, archive.ConnectionChanged{Customer: c, Connection: fmt.Sprintf("con_%s%d", c, i), To: "active", Action: "redeem"}); err != nil {
				t.Fatal(err)
			}
		}
	}

	a := connectAttacker(t, url, dmsSeedFile(cfg.DataDir, "acme"), dmsInboxPrefix("acme"))

	// What acme's DMS may do: follow acme's events with its consumer.
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	var got []string
	err = archive.Subscribe(sctx, a.js, archive.SubscribeConfig{Durable: dmsConsumer("acme"), Customer: "acme", Types: []string{archive.TypeConnectionChanged}},
		func(_ context.Context, d *archive.Delivery) error {
			got = append(got, d.Subject)
			if len(got) == 2 {
				cancel()
			}
			return nil
		})
	cancel()
	if err != nil || len(got) != 2 || got[0] != "mailgate.acme.connection.changed" || got[1] != got[0] {
		t.Fatalf("acme's DMS following its events: %v, got %v", err, got)
	}
	// Its acknowledgements count (its ack subjects are allowed).
	if c, err := stream.Consumer(ctx, dmsConsumer("acme")); err != nil || c.CachedInfo().AckFloor.Stream == 0 || c.CachedInfo().NumAckPending != 0 {
		t.Errorf("acme's consumer after acknowledging both: %v, %+v", err, c)
	}

	// Another customer's events.
	for _, filter := range []string{"mailgate.globex.>", "mailgate.globex.connection.changed", "mailgate.>", "mailgate.*.>", ">"} {
		a.refused("consumer on "+filter, "$JS.API.CONSUMER.CREATE.MAILGATE.dms_acme."+filter, func(ctx context.Context) error {
			_, err := a.js.CreateOrUpdateConsumer(ctx, archive.StreamName, jetstream.ConsumerConfig{
				Durable: dmsConsumer("acme"), FilterSubject: filter, DeliverPolicy: jetstream.DeliverAllPolicy})
			return err
		})
	}
	a.refused("consumer with two filters", "$JS.API.CONSUMER.CREATE.MAILGATE.dms_acme", func(ctx context.Context) error {
		_, err := a.js.CreateOrUpdateConsumer(ctx, archive.StreamName, jetstream.ConsumerConfig{
			Durable: dmsConsumer("acme"), FilterSubjects: []string{"mailgate.acme.>", "mailgate.globex.>"}})
		return err
	})
	a.refused("legacy ephemeral consumer", "$JS.API.CONSUMER.CREATE.MAILGATE", func(ctx context.Context) error {
		return a.request(ctx, "$JS.API.CONSUMER.CREATE.MAILGATE", `{"stream_name":"MAILGATE","config":{"filter_subject":"mailgate.globex.>","deliver_policy":"all","ack_policy":"none"}}`)
	})
	a.refused("legacy durable consumer", "$JS.API.CONSUMER.DURABLE.CREATE.MAILGATE.dms_acme", func(ctx context.Context) error {
		return a.request(ctx, "$JS.API.CONSUMER.DURABLE.CREATE.MAILGATE.dms_acme", `{"stream_name":"MAILGATE","config":{"durable_name":"dms_acme","filter_subject":"mailgate.globex.>","ack_policy":"explicit"}}`)
	})
	// The subject it may use, with another filter in the body: the
	// server compares the two.
	ctx3, cancel3 := context.WithTimeout(ctx, 5*time.Second)
	err = a.request(ctx3, "$JS.API.CONSUMER.CREATE.MAILGATE.dms_acme.mailgate.acme.>",
		`{"stream_name":"MAILGATE","config":{"name":"dms_acme","durable_name":"dms_acme","filter_subject":"mailgate.globex.>","deliver_policy":"all","ack_policy":"explicit"}}`)
	cancel3()
	if err == nil || !strings.Contains(err.Error(), `"err_code":10131`) {
		t.Errorf("consumer whose body's filter differs from its subject's: %v, want the server's refusal", err)
	}
	for _, sub := range []string{"mailgate.globex.>", "mailgate.>", ">", "_INBOX.>", "_INBOX_dms.globex.>", "$JS.ACK.>"} {
		a.refused("subscription to "+sub, "subscription to \""+sub+"\"", func(context.Context) error {
			_, err := a.nc.SubscribeSync(sub)
			return err
		})
	}
	a.refused("stream info", "$JS.API.STREAM.INFO.MAILGATE", func(ctx context.Context) error {
		return a.request(ctx, "$JS.API.STREAM.INFO.MAILGATE", `{"subjects_filter":"mailgate.>"}`)
	})
	a.refused("message get", "$JS.API.STREAM.MSG.GET.MAILGATE", func(ctx context.Context) error {
		return a.request(ctx, "$JS.API.STREAM.MSG.GET.MAILGATE", `{"last_by_subj":"mailgate.globex.connection.changed"}`)
	})
	a.refused("direct get", "$JS.API.DIRECT.GET.MAILGATE", func(ctx context.Context) error {
		return a.request(ctx, "$JS.API.DIRECT.GET.MAILGATE", `{"seq":3}`)
	})
	a.refused("direct get by subject", "$JS.API.DIRECT.GET.MAILGATE.mailgate.globex.connection.changed", func(ctx context.Context) error {
		return a.request(ctx, "$JS.API.DIRECT.GET.MAILGATE.mailgate.globex.connection.changed", ``)
	})

	// mailgate's own consumers.
	for name := range mine {
		a.refused("update of "+name, "$JS.API.CONSUMER.CREATE.MAILGATE."+name+".mailgate.acme.>", func(ctx context.Context) error {
			_, err := a.js.UpdateConsumer(ctx, archive.StreamName, jetstream.ConsumerConfig{
				Durable: name, AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: "mailgate.acme.>"})
			return err
		})
		a.refused("delete of "+name, "$JS.API.CONSUMER.DELETE.MAILGATE."+name, func(ctx context.Context) error {
			return a.js.DeleteConsumer(ctx, archive.StreamName, name)
		})
		a.refused("info of "+name, "$JS.API.CONSUMER.INFO.MAILGATE."+name, func(ctx context.Context) error {
			_, err := a.js.Consumer(ctx, archive.StreamName, name)
			return err
		})
		a.refused("pull from "+name, "$JS.API.CONSUMER.MSG.NEXT.MAILGATE."+name, func(ctx context.Context) error {
			return a.request(ctx, "$JS.API.CONSUMER.MSG.NEXT.MAILGATE."+name, `{"batch":10,"no_wait":true}`)
		})
		a.refused("ack on "+name, "$JS.ACK.MAILGATE."+name, func(context.Context) error {
			return a.nc.Publish("$JS.ACK.MAILGATE."+name+".1.3.1.0.0", []byte("+ACK"))
		})
	}
	// Nor does it publish events or reach the control service.
	a.refused("publishing an event", "mailgate.globex.connection.changed", func(context.Context) error {
		return a.nc.Publish("mailgate.globex.connection.changed", []byte(`{}`))
	})
	a.refused("control service", controlSubject+".redeem", func(ctx context.Context) error {
		return a.request(ctx, controlSubject+".redeem", `{}`)
	})

	// mailgate's consumers are as they were, and have lost nothing.
	for name, want := range mine {
		c, err := stream.Consumer(ctx, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		info := c.CachedInfo()
		if info.Config.FilterSubject != want.FilterSubject || !slices.Equal(info.Config.FilterSubjects, want.FilterSubjects) {
			t.Errorf("%s now filters %q %q", name, info.Config.FilterSubject, info.Config.FilterSubjects)
		}
		if info.NumPending != 2 || info.NumAckPending != 0 || info.Delivered.Stream != 0 {
			t.Errorf("%s: %d pending, %d awaiting ack, delivered up to %d; want its 2 events untouched", name, info.NumPending, info.NumAckPending, info.Delivered.Stream)
		}
	}
}

// TestDMSIdentityAdmittedOnReload: a DMS identity written while the
// embedded server runs (as `mailgate dms-credentials` writes it) is
// refused until the identities are reloaded (what SIGHUP does), then
// admitted with its rights only; the running clients stay connected.
func TestDMSIdentityAdmittedOnReload(t *testing.T) {
	cfg := &Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:0"}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := startNATS(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, _, err := connectNATS(t.Context(), cfg, srv.ClientURL(), "mailgate", log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := newDMSIdentity(cfg.DataDir, "acme"); err != nil {
		t.Fatal(err)
	}
	auth, err := natsAuth(dmsSeedFile(cfg.DataDir, "acme"))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := nats.Connect(srv.ClientURL(), auth); err == nil {
		c.Close()
		t.Fatal("a DMS identity written after the start was admitted before a reload")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("a DMS identity before the reload: %v, want an authorization violation", err)
	}
	if err := reloadNATSIdentities(srv, cfg); err != nil {
		t.Fatal(err)
	}
	a := connectAttacker(t, srv.ClientURL(), dmsSeedFile(cfg.DataDir, "acme"), dmsInboxPrefix("acme"))
	a.refused("reading another customer's events", "subscription to \"mailgate.globex.>\"", func(context.Context) error {
		_, err := a.nc.SubscribeSync("mailgate.globex.>")
		return err
	})
	if !nc.IsConnected() {
		t.Error("the service's connection was dropped by the reload")
	}
	// Removing the seed from the data dir and reloading revokes the
	// identity; the DMS still holds its copy of the seed.
	held := filepath.Join(t.TempDir(), "acme.nk")
	if err := copyFile(dmsSeedFile(cfg.DataDir, "acme"), held, 0o600); err != nil {
		t.Fatal(err)
	}
	heldAuth, err := natsAuth(held)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := nats.Connect(srv.ClientURL(), heldAuth); err != nil {
		t.Fatalf("the held copy before the removal: %v", err)
	} else {
		c.Close()
	}
	if err := os.Remove(dmsSeedFile(cfg.DataDir, "acme")); err != nil {
		t.Fatal(err)
	}
	if err := reloadNATSIdentities(srv, cfg); err != nil {
		t.Fatal(err)
	}
	if c, err := nats.Connect(srv.ClientURL(), heldAuth); err == nil {
		c.Close()
		t.Error("a removed DMS identity was admitted after the reload")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("a removed DMS identity: %v, want an authorization violation", err)
	}
}

// TestDMSCredentialsNATSConf: `mailgate dms-credentials C --nats-conf`
// prints a user entry that nats-server reads back as C's DMS identity with
// exactly dmsPermissions, for an external server's nats.conf.
func TestDMSCredentialsNATSConf(t *testing.T) {
	dir := t.TempDir()
	var out, errOut strings.Builder
	getenv := func(k string) string {
		if k == "MAILGATE_DATA_DIR" {
			return dir
		}
		return ""
	}
	if code := run(t.Context(), []string{"dms-credentials", "acme", "--nats-conf"}, getenv, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte("authorization {\n  users: [\n"+out.String()+"  ]\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	pub, err := seedPublicKey(dmsSeedFile(dir, "acme"), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(opts.Nkeys) != 1 || opts.Nkeys[0].Nkey != pub {
		t.Fatalf("users %+v, want acme's public key %s", opts.Nkeys, pub)
	}
	want := dmsPermissions("acme")
	got := opts.Nkeys[0].Permissions
	if got == nil || !slices.Equal(got.Publish.Allow, want.Publish.Allow) || !slices.Equal(got.Subscribe.Allow, want.Subscribe.Allow) {
		t.Errorf("permissions read back %+v, want %+v", got, want)
	}
}

// TestComposeNATSConfDMSRights: the dms_firma user of
// deploy/nats/nats.conf, read by nats-server itself, has exactly the
// rights of customer firma's DMS identity of the embedded server, which
// TestDMSIdentityAttacker attacks.
func TestComposeNATSConfDMSRights(t *testing.T) {
	dir := t.TempDir()
	if err := copyFile("../../deploy/nats/nats.conf", filepath.Join(dir, "nats.conf"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth := "MAILGATE_PASSWORD: \"a\"\nDMS_PASSWORD: \"b\"\nROUTE_PASSWORD: \"c\"\nROUTES: [\"nats-route://route:c@127.0.0.1:6222\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "auth.conf"), []byte(auth), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, u := range opts.Users {
		switch u.Username {
		case "mailgate":
			if u.Permissions != nil {
				t.Errorf("mailgate user restricted: %+v", u.Permissions)
			}
		case "dms_firma":
			found = true
			want := dmsPermissions("firma")
			if u.Permissions == nil || u.Permissions.Publish == nil || u.Permissions.Subscribe == nil ||
				!slices.Equal(u.Permissions.Publish.Allow, want.Publish.Allow) || !slices.Equal(u.Permissions.Subscribe.Allow, want.Subscribe.Allow) ||
				len(u.Permissions.Publish.Deny) != 0 || len(u.Permissions.Subscribe.Deny) != 0 {
				t.Errorf("dms_firma's rights %+v %+v, want %+v %+v", u.Permissions.Publish, u.Permissions.Subscribe, want.Publish, want.Subscribe)
			}
		default:
			if u.Permissions == nil {
				t.Errorf("user %s has every right", u.Username)
			}
		}
	}
	if !found {
		t.Error("nats.conf has no dms_firma user")
	}
}
