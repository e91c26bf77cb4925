package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/mailgate/mailgate/connector"
)

// Each customer's DMS has a NATS identity of its own that reads that
// customer's events and nothing else (dmsPermissions). For the embedded
// server its seed lives in the data directory beside the others, under
// nats-auth/dms/<customer>.nk; `mailgate serve` admits every seed there
// when it starts and again on SIGHUP.

// dmsSeedDir holds the DMS identities' seeds.
func dmsSeedDir(dataDir string) string { return filepath.Join(natsAuthDir(dataDir), "dms") }

// dmsSeedFile is the seed of customer's DMS.
func dmsSeedFile(dataDir, customer string) string {
	return filepath.Join(dmsSeedDir(dataDir), customer+".nk")
}

// dmsPublicKeys returns the public key of every DMS identity in the data
// directory by customer.
func dmsPublicKeys(dataDir string) (map[string]string, error) {
	pubs := make(map[string]string)
	entries, err := os.ReadDir(dmsSeedDir(dataDir))
	if errors.Is(err, fs.ErrNotExist) {
		return pubs, nil
	}
	if err != nil {
		return nil, fmt.Errorf("nats credentials: %w", err)
	}
	for _, e := range entries {
		customer, ok := strings.CutSuffix(e.Name(), ".nk")
		if !ok || e.IsDir() {
			continue
		}
		if err := connector.ValidCustomer(customer); err != nil {
			return nil, fmt.Errorf("nats credentials: %s: %w", filepath.Join(dmsSeedDir(dataDir), e.Name()), err)
		}
		pub, err := seedPublicKey(dmsSeedFile(dataDir, customer), false)
		if err != nil {
			return nil, fmt.Errorf("nats credentials dms %s: %w", customer, err)
		}
		pubs[customer] = pub
	}
	return pubs, nil
}

// newDMSIdentity creates customer's DMS seed in the data directory, or
// keeps the one there, and returns its public key.
func newDMSIdentity(dataDir, customer string) (string, error) {
	if err := connector.ValidCustomer(customer); err != nil {
		return "", err
	}
	for _, dir := range []string{natsAuthDir(dataDir), dmsSeedDir(dataDir)} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", fmt.Errorf("nats credentials: %w", err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return "", fmt.Errorf("nats credentials: %w", err)
		}
	}
	return seedPublicKey(dmsSeedFile(dataDir, customer), true)
}

const dmsUsage = `mailgate dms-credentials CUSTOMER [--nats-conf]

Creates (or shows) the NATS identity of CUSTOMER's DMS: an nkey seed in
MAILGATE_DATA_DIR/nats-auth/dms/CUSTOMER.nk that may read CUSTOMER's events
(mailgate.CUSTOMER.>) with one consumer of its own and nothing else.
A running "mailgate serve" admits it after SIGHUP or a restart.
--nats-conf prints the user entry for an external nats-server's
authorization block instead (with the public key; the seed stays here).
`

// cmdDMSCredentials is `mailgate dms-credentials CUSTOMER`.
func cmdDMSCredentials(_ context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "dms-credentials")
	fs.Usage = func() { fmt.Fprint(e.stderr, dmsUsage) }
	natsConf := fs.Bool("nats-conf", false, "print the nats.conf user entry for an external server")
	cfg, rest, err := loadConfig(fs, args, e.getenv, e.environ)
	if err != nil {
		return configError(e, err)
	}
	if len(rest) != 1 {
		return usageError(e, "dms-credentials CUSTOMER [--nats-conf]")
	}
	customer := rest[0]
	pub, err := newDMSIdentity(cfg.DataDir, customer)
	if err != nil {
		return err
	}
	if *natsConf {
		fmt.Fprint(e.stdout, natsConfUser(pub, dmsPermissions(customer)))
		return nil
	}
	fmt.Fprintf(e.stdout, `DMS identity of customer %s
  seed file:     %s (give it to the DMS; whoever holds it reads %s's events)
  public key:    %s
  subjects:      mailgate.%s.>
  consumer:      %s (durable, on stream MAILGATE, one filter under mailgate.%s.>)
  inbox prefix:  %s (nats.CustomInboxPrefix)
A running mailgate serve admits it after SIGHUP (kill -HUP) or a restart.
`, customer, dmsSeedFile(cfg.DataDir, customer), customer, pub, customer, dmsConsumer(customer), customer, dmsInboxPrefix(customer))
	return nil
}

// natsConfUser renders a user entry of nats.conf's authorization block.
func natsConfUser(nkey string, p *server.Permissions) string {
	list := func(subjects []string) string {
		q := make([]string, len(subjects))
		for i, s := range subjects {
			q[i] = fmt.Sprintf("%q", s)
		}
		return "[\n        " + strings.Join(q, ",\n        ") + "\n      ]"
	}
	return fmt.Sprintf(`    { nkey: %s, permissions: {
      publish: { allow: %s }
      subscribe: { allow: %s }
    } }
`, nkey, list(p.Publish.Allow), list(p.Subscribe.Allow))
}
