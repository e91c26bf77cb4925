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
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// TestConnectNATSTLSAndPassword: mailgate reaches an external NATS that
// requires TLS and a user, as the compose cluster with TLS switched on
// (docs/deployment.md): the CA of MAILGATE_NATS_CA verifies the server,
// the user and password of MAILGATE_NATS_USER and _PASSWORD_FILE log in.
// Without the CA, or with a wrong password, it does not connect.
func TestConnectNATSTLSAndPassword(t *testing.T) {
	dir := t.TempDir()
	caPEM, cert := testCertificates(t)
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		TLS: true, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Users: []*server.User{{Username: "mailgate", Password: "nats-pw"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	url := "tls://" + srv.Addr().String()
	pwFile := filepath.Join(dir, "password")
	if err := os.WriteFile(pwFile, []byte("nats-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := validEnv()
	env["MAILGATE_NATS_URL"] = url
	env["MAILGATE_NATS_USER"] = "mailgate"
	env["MAILGATE_NATS_PASSWORD_FILE"] = pwFile
	env["MAILGATE_NATS_CA"] = caFile
	cfg, err := load(t, env)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	connect := func(cfg Config) error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		nc, _, err := connectNATS(ctx, &cfg, cfg.NATSURL, "test", logger)
		if err == nil {
			defer nc.Close()
			if st, err := nc.TLSConnectionState(); err != nil || !st.HandshakeComplete {
				t.Errorf("connected without TLS: %v", err)
			}
		}
		return err
	}
	if err := connect(cfg); err != nil {
		t.Fatalf("TLS with the CA and the password: %v", err)
	}
	noCA := cfg
	noCA.NATSCA = ""
	if err := connect(noCA); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without the CA: err = %v, want a certificate error", err)
	}
	wrong := cfg
	wrong.NATSPassword = "guess"
	if err := connect(wrong); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Errorf("wrong password: err = %v, want an authorization error", err)
	}
}

// testCertificates makes a CA and a server certificate for 127.0.0.1
// signed by it; it returns the CA in PEM and the server's key pair.
func testCertificates(t *testing.T) ([]byte, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailgate test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "nats-1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"nats-1", "localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caTmpl, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
