package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// The embedded NATS server admits only the identities whose nkey seeds it
// generates into the data directory on first start: one for the mailgate
// processes, one for the CLI and local tools on the same host, and one for
// a local archive subscriber (a DMS), which may only follow events. The
// server itself keeps only the public keys; whoever can read a seed file
// can connect as that identity, so the directory is 0700 and the files
// 0600, readable by the operator's account alone.
const (
	natsRoleService    = "mailgate"   // serve and demo
	natsRoleCLI        = "cli"        // CLI commands and other local tools
	natsRoleSubscriber = "subscriber" // a local DMS following events, such as archive/example/subscriber
)

// natsRoles are the identities of the embedded server.
var natsRoles = []string{natsRoleService, natsRoleCLI, natsRoleSubscriber}

// natsAuthDir is where the embedded server's credentials live.
func natsAuthDir(dataDir string) string { return filepath.Join(dataDir, "nats-auth") }

// natsSeedFile is the nkey seed file of role.
func natsSeedFile(dataDir, role string) string {
	return filepath.Join(natsAuthDir(dataDir), role+".nk")
}

// ensureNATSCredentials reads the seed of every role from the data
// directory, creating missing ones, and returns the public keys by role.
func ensureNATSCredentials(dataDir string) (map[string]string, error) {
	dir := natsAuthDir(dataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("nats credentials: %w", err)
	}
	// MkdirAll leaves an existing directory's mode alone.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("nats credentials: %w", err)
	}
	pubs := make(map[string]string)
	for _, role := range natsRoles {
		path := natsSeedFile(dataDir, role)
		seed, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			seed, err = newSeedFile(path)
		}
		if err != nil {
			return nil, fmt.Errorf("nats credentials %s: %w", role, err)
		}
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, fmt.Errorf("nats credentials %s: %w", role, err)
		}
		kp, err := nkeys.ParseDecoratedNKey(seed)
		if err != nil {
			return nil, fmt.Errorf("nats credentials %s: %s is not an nkey seed file: %w", role, path, err)
		}
		pub, err := kp.PublicKey()
		kp.Wipe()
		if err != nil || !nkeys.IsValidPublicUserKey(pub) {
			return nil, fmt.Errorf("nats credentials %s: %s does not hold a user seed", role, path)
		}
		pubs[role] = pub
	}
	return pubs, nil
}

// newSeedFile writes a new user nkey seed to path, mode 0600, failing if
// the file exists: two processes starting at once keep the first seed.
func newSeedFile(path string) ([]byte, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	defer kp.Wipe()
	seed, err := kp.Seed()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	content := append(append([]byte(nil), seed...), '\n')
	if _, err := f.Write(content); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return content, nil
}

// embeddedUsers are the identities the embedded server admits. The
// service may do anything. The CLI may use JetStream (state and events)
// and call the control service, but not answer it: it may not subscribe
// to the control subjects, so no local tool can stand in for the portal
// or read another caller's request. The subscriber may only follow the
// MAILGATE stream with its own consumers: no state, no control service.
func embeddedUsers(pubs map[string]string) []*server.NkeyUser {
	return []*server.NkeyUser{
		{Nkey: pubs[natsRoleService]},
		{Nkey: pubs[natsRoleCLI], Permissions: &server.Permissions{
			Subscribe: &server.SubjectPermission{Deny: []string{controlSubject + ".>", "$SRV.>"}},
		}},
		{Nkey: pubs[natsRoleSubscriber], Permissions: subscriberPermissions()},
	}
}

// subscriberInboxPrefix is the inbox prefix a subscriber must use
// (nats.CustomInboxPrefix): it may subscribe to its own replies only, not
// to "_INBOX.>", where it could read the replies to other clients' requests,
// such as mailgate's reads of its KV buckets.
const subscriberInboxPrefix = "_INBOX_dms"

// subscriberPermissions let a client follow the MAILGATE stream with a
// durable or ephemeral consumer and nothing else. They are the dms user's
// of deploy/nats/nats.conf, and README's nats-server example gives a DMS
// the same.
func subscriberPermissions() *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			"$JS.API.INFO",
			"$JS.API.STREAM.INFO.MAILGATE",
			"$JS.API.CONSUMER.CREATE.MAILGATE",
			"$JS.API.CONSUMER.CREATE.MAILGATE.>",
			"$JS.API.CONSUMER.DURABLE.CREATE.MAILGATE.>",
			"$JS.API.CONSUMER.INFO.MAILGATE.>",
			"$JS.API.CONSUMER.DELETE.MAILGATE.>",
			"$JS.API.CONSUMER.MSG.NEXT.MAILGATE.>",
			"$JS.ACK.MAILGATE.>",
			"$JS.FC.MAILGATE.>",
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{subscriberInboxPrefix + ".>"}},
	}
}

// natsAuth turns a credentials file into a connect option: a NATS
// credentials file (user JWT and seed, as `nsc` writes it) or a file
// holding a user nkey seed.
func natsAuth(path string) (nats.Option, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("nats credentials: %w", err)
	}
	defer clear(b)
	if bytes.Contains(b, []byte("BEGIN NATS USER JWT")) {
		return nats.UserCredentials(path), nil
	}
	opt, err := nats.NkeyOptionFromSeed(path)
	if err != nil {
		return nil, fmt.Errorf("nats credentials %s: neither a .creds file nor a user nkey seed", path)
	}
	return opt, nil
}

// cliNATSAuth is how a CLI command or local tool authenticates: with
// MAILGATE_NATS_CREDS or MAILGATE_NATS_USER if set, else with the CLI seed
// the embedded server generated into the data directory. Without any it
// connects anonymously, which only an unauthenticated external server
// admits.
func cliNATSAuth(cfg *Config) ([]nats.Option, error) {
	var opts []nats.Option
	if cfg.NATSUser != "" {
		opts = append(opts, nats.UserInfo(cfg.NATSUser, cfg.NATSPassword))
	}
	creds := cfg.NATSCreds
	if creds == "" && cfg.NATSUser == "" {
		if p := natsSeedFile(cfg.DataDir, natsRoleCLI); fileExists(p) {
			creds = p
		}
	}
	if creds != "" {
		o, err := natsAuth(creds)
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	if cfg.NATSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.NATSCA))
	}
	return opts, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
