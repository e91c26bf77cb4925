package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/mailgate/mailgate/archive"
)

// testCA makes a CA and a server certificate for 127.0.0.1 signed by it,
// and writes the CA to a PEM file.
func testCA(t *testing.T) (caFile string, serverCert tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test NATS CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "nats"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return caFile, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// runExternalNATS starts a JetStream server as an operator would run one:
// TLS, and clients admitted by opts' authentication.
func runExternalNATS(t *testing.T, cert tls.Certificate, auth func(*server.Options)) string {
	t.Helper()
	opts := &server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		TLS: true, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, TLSTimeout: 5,
	}
	auth(opts)
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("external nats not ready")
	}
	return "tls://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.Addr().(*net.TCPAddr).Port))
}

// nkeyUser makes a user nkey, writes its seed to a 0600 file and returns
// the file and the public key.
func nkeyUser(t *testing.T) (seedFile, pub string) {
	t.Helper()
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	pub, _ = kp.PublicKey()
	seedFile = filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, append(seed, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return seedFile, pub
}

// jwtUser sets opts up in operator mode (an operator, an account with
// JetStream, resolved from memory) and writes a user's .creds file, as
// `nsc` would for the operator.
func jwtUser(t *testing.T) (func(*server.Options), string) {
	t.Helper()
	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	oc := jwt.NewOperatorClaims(opub)
	oc.Name = "test-operator"
	ojwt, err := oc.Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	oc, _ = jwt.DecodeOperatorClaims(ojwt)
	account := func(name string, js bool) (nkeys.KeyPair, string, string) {
		akp, _ := nkeys.CreateAccount()
		apub, _ := akp.PublicKey()
		ac := jwt.NewAccountClaims(apub)
		ac.Name = name
		if js {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		ajwt, err := ac.Encode(okp)
		if err != nil {
			t.Fatal(err)
		}
		return akp, apub, ajwt
	}
	akp, apub, ajwt := account("mailgate", true)
	_, spub, sjwt := account("SYS", false)
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.Name = "mailgate"
	ujwt, err := uc.Encode(akp)
	if err != nil {
		t.Fatal(err)
	}
	useed, _ := ukp.Seed()
	creds, err := jwt.FormatUserConfig(ujwt, useed)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "mailgate.creds")
	if err := os.WriteFile(file, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return func(o *server.Options) {
		res := &server.MemAccResolver{}
		_ = res.Store(apub, ajwt)
		_ = res.Store(spub, sjwt)
		o.TrustedOperators = []*jwt.OperatorClaims{oc}
		o.AccountResolver = res
		o.SystemAccount = spub
	}, file
}

// TestExternalNATSCredentials connects as `mailgate serve` does to an
// external NATS with TLS and each kind of credential MAILGATE_NATS_CREDS
// may name, and uses JetStream there; without the credential, or without
// the CA, the server refuses.
func TestExternalNATSCredentials(t *testing.T) {
	caFile, cert := testCA(t)
	seedFile, pub := nkeyUser(t)
	jwtAuth, credsFile := jwtUser(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name           string
		auth           func(*server.Options)
		creds          string
		user, password string
	}{
		{"nkey seed file", func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} }, seedFile, "", ""},
		{"creds file", jwtAuth, credsFile, "", ""},
		{"user and password", func(o *server.Options) {
			o.Users = []*server.User{{Username: "mailgate", Password: "nats-pw-1234"}}
		}, "", "mailgate", "nats-pw-1234"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := runExternalNATS(t, cert, tc.auth)
			cfg := &Config{NATSURL: url, NATSCreds: tc.creds, NATSUser: tc.user, NATSPassword: tc.password, NATSCA: caFile, DataDir: t.TempDir()}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			nc, js, err := connectNATS(ctx, cfg, url, "test", log)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if _, err := nc.TLSConnectionState(); err != nil {
				t.Errorf("connection without TLS: %v", err)
			}
			kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "probe"})
			if err != nil {
				t.Fatalf("JetStream with %s: %v", tc.name, err)
			}
			if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
				t.Fatal(err)
			}
			// The CLI takes the same settings.
			opts, err := cliNATSAuth(cfg)
			if err != nil {
				t.Fatal(err)
			}
			cli, err := nats.Connect(url, opts...)
			if err != nil {
				t.Fatalf("CLI: %v", err)
			}
			cli.Close()
			if !testing.Short() {
				// And the built binary, configured from the environment.
				out := runCLI(t, mailgateBinary(t), []string{"MAILGATE_NATS_URL=" + url, "MAILGATE_NATS_CREDS=" + tc.creds,
					"MAILGATE_NATS_USER=" + tc.user, "MAILGATE_NATS_PASSWORD=" + tc.password,
					"MAILGATE_NATS_CA=" + caFile, "MAILGATE_DATA_DIR=" + t.TempDir()}, "apikeys", "list")
				if !strings.HasPrefix(out, "ID") {
					t.Errorf("mailgate apikeys list against the external NATS:\n%s", out)
				}
			}
			// Without the credential, or without the CA, refused.
			if nc, err := nats.Connect(url, nats.RootCAs(caFile)); err == nil {
				nc.Close()
				t.Error("external NATS admitted a client without credentials")
			}
			noCA := *cfg
			noCA.NATSCA = ""
			auth, err := cliNATSAuth(&noCA)
			if err != nil || len(auth) == 0 {
				t.Fatalf("credentials without CA: %v", err)
			}
			if nc, err := nats.Connect(url, auth...); err == nil {
				nc.Close()
				t.Error("connected without the CA: the server's certificate was not verified")
			} else if !strings.Contains(err.Error(), "certificate") {
				t.Errorf("without the CA: %v, want a certificate error", err)
			}
		})
	}
}

// TestExternalNATSSubscriberPermissions runs the README's example: mailgate
// and a DMS of customer firma with its own nkey and dmsPermissions. The DMS receives
// events and cannot read mailgate's state or call the control service.
func TestExternalNATSSubscriberPermissions(t *testing.T) {
	caFile, cert := testCA(t)
	mgSeed, mgPub := nkeyUser(t)
	dmsSeed, dmsPub := nkeyUser(t)
	url := runExternalNATS(t, cert, func(o *server.Options) {
		o.Nkeys = []*server.NkeyUser{{Nkey: mgPub}, {Nkey: dmsPub, Permissions: dmsPermissions("firma")}}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	nc, js, err := connectNATS(ctx, &Config{NATSURL: url, NATSCreds: mgSeed, NATSCA: caFile}, url, "mailgate", log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := archive.EnsureStream(ctx, js, archive.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "connections"}); err != nil {
		t.Fatal(err)
	}
	pub := archive.NewPublisher(js, "mailgate")
	if err := pub.ConnectionChanged(ctx, archive.ConnectionChanged{Customer: "firma", Connection: "con_x", To: "active"}); err != nil {
		t.Fatal(err)
	}

	dmsAuth, _ := natsAuth(dmsSeed)
	// Refused requests surface as timeouts; the violations themselves
	// arrive asynchronously.
	dms, err := nats.Connect(url, dmsAuth, nats.RootCAs(caFile), nats.CustomInboxPrefix(dmsInboxPrefix("firma")),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	defer dms.Close()
	djs, _ := jetstream.New(dms)
	got := make(chan archive.Event, 1)
	sctx, scancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- archive.Subscribe(sctx, djs, archive.SubscribeConfig{Durable: dmsConsumer("firma"), Customer: "firma", Types: []string{archive.TypeConnectionChanged}}, func(_ context.Context, d *archive.Delivery) error {
			select {
			case got <- d.Event:
			default:
			}
			return nil
		})
	}()
	select {
	case ev := <-got:
		if ev.Type != archive.TypeConnectionChanged {
			t.Errorf("DMS got %s", ev.Type)
		}
	case err := <-done:
		t.Fatalf("DMS subscribe: %v", err)
	case <-ctx.Done():
		t.Fatal("DMS received no event")
	}
	scancel()
	<-done
	// State stays out of reach, and so does the control service.
	kctx, kcancel := context.WithTimeout(ctx, 2*time.Second)
	defer kcancel()
	if _, err := djs.KeyValue(kctx, "connections"); err == nil {
		t.Error("DMS opened KV connections")
	}
	if _, err := dms.Request("$JS.API.DIRECT.GET.KV_connections", []byte(`{"last_by_subj":"$KV.connections.con_x"}`), 2*time.Second); err == nil {
		t.Error("DMS read KV connections directly")
	}
	if _, err := dms.Request(controlSubject+".redeem", []byte(`{}`), 2*time.Second); err == nil {
		t.Error("DMS reached the control service")
	}
}
