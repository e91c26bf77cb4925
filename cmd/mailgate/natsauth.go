package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/mailgate/mailgate/archive"
)

// The embedded NATS server admits only the identities whose nkey seeds it
// keeps in the data directory: one for the mailgate processes and one for
// the CLI and local tools on the same host, both generated on first start,
// and one per customer for that customer's DMS, written by
// `mailgate dms-credentials CUSTOMER` (see dms.go). The server itself keeps
// only the public keys; whoever can read a seed file can connect as that
// identity, so the directory is 0700 and the files 0600, readable by the
// operator's account alone. There is no identity that follows every
// customer's events but mailgate's own.
const (
	natsRoleService = "mailgate" // serve and demo
	natsRoleCLI     = "cli"      // CLI commands and other local tools
)

// natsRoles are the identities of the embedded server generated at start.
var natsRoles = []string{natsRoleService, natsRoleCLI}

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
		pub, err := seedPublicKey(path, true)
		if err != nil {
			return nil, fmt.Errorf("nats credentials %s: %w", role, err)
		}
		pubs[role] = pub
	}
	return pubs, nil
}

// seedPublicKey reads the user nkey seed at path, creating it first when
// create and it is missing, makes it 0600 and returns its public key.
func seedPublicKey(path string, create bool) (string, error) {
	seed, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		seed, err = newSeedFile(path)
	}
	if err != nil {
		return "", err
	}
	defer clear(seed)
	if err := os.Chmod(path, 0o600); err != nil {
		return "", err
	}
	kp, err := nkeys.ParseDecoratedNKey(seed)
	if err != nil {
		return "", fmt.Errorf("%s is not an nkey seed file: %w", path, err)
	}
	pub, err := kp.PublicKey()
	kp.Wipe()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return "", fmt.Errorf("%s does not hold a user seed", path)
	}
	return pub, nil
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

// embeddedUsers are the identities the embedded server admits: the
// service, which may do anything; the CLI (cliPermissions); and each
// customer's DMS (dmsPermissions), keyed by customer in dms.
func embeddedUsers(pubs, dms map[string]string) []*server.NkeyUser {
	users := []*server.NkeyUser{
		{Nkey: pubs[natsRoleService]},
		{Nkey: pubs[natsRoleCLI], Permissions: cliPermissions()},
	}
	for _, customer := range slices.Sorted(maps.Keys(dms)) {
		users = append(users, &server.NkeyUser{Nkey: dms[customer], Permissions: dmsPermissions(customer)})
	}
	return users
}

// cliPermissions let the CLI use JetStream (state and events) and call
// the control service, but not answer it: it may not subscribe to the
// control subjects, so no local tool can stand in for the portal or read
// another caller's request. Nor may it create, change, delete or purge a
// stream (a stream on "mailgatectl.>" would record the operator's sealed
// requests; purging KV "control" would forget which were answered), write
// to KV "control", or remove messages from a stream: the CLI binds to the
// buckets `mailgate serve` creates (bindOnly). A replayed control request
// therefore always meets its id in KV "control".
func cliPermissions() *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{Deny: []string{
			"$JS.API.STREAM.CREATE.>",
			"$JS.API.STREAM.UPDATE.>",
			"$JS.API.STREAM.DELETE.>",
			"$JS.API.STREAM.PURGE.>",
			"$JS.API.STREAM.MSG.DELETE.>",
			"$JS.API.STREAM.RESTORE.>",
			"$JS.API.STREAM.SNAPSHOT.>",
			"$JS.API.STREAM.PEER.REMOVE.>",
			"$JS.API.STREAM.LEADER.STEPDOWN.>",
			"$JS.API.META.LEADER.STEPDOWN",
			"$JS.API.SERVER.REMOVE",
			"$JS.API.ACCOUNT.PURGE.>",
			"$KV." + controlBucket + ".>",
		}},
		Subscribe: &server.SubjectPermission{Deny: []string{controlSubject + ".>", "$SRV.>"}},
	}
}

// dmsInboxPrefix is the inbox prefix customer's DMS must use
// (nats.CustomInboxPrefix): it may subscribe to its own replies only, not
// to "_INBOX.>", where it could read the replies to other clients'
// requests, such as mailgate's reads of its KV buckets, nor to another
// customer's DMS's.
func dmsInboxPrefix(customer string) string { return "_INBOX_dms." + customer }

// dmsConsumer is the one consumer customer's DMS may create and use on the
// stream MAILGATE. NATS permissions are on subjects and a consumer's name
// is one subject token, matched whole: a DMS allowed consumers of any name
// could pull from, acknowledge, update or delete mailgate's own consumers
// (the webhook dispatcher's) and other customers' by naming them. So each
// DMS has a name of its own, which no other identity but mailgate's may
// use, and mailgate's consumers are out of every DMS's reach.
func dmsConsumer(customer string) string { return "dms_" + customer }

// dmsPermissions let customer's DMS follow its own customer's events on
// the stream MAILGATE with its own consumer and nothing else:
//   - create (or change, or recreate from any position) the consumer
//     dmsConsumer(customer) only through the API subject that carries the
//     filter, and only with one filter under "mailgate.<customer>.>": the
//     server refuses a request whose filter differs from the subject's, and
//     one with several filters; the forms without a filter in the subject
//     ($JS.API.CONSUMER.CREATE.MAILGATE[.<name>], the legacy
//     $JS.API.CONSUMER.DURABLE.CREATE) are not allowed;
//   - look the consumer up, pull from it, acknowledge its messages and
//     delete it;
//   - receive replies on its own inbox prefix only.
//
// No stream info (its subject counts name other customers), no message or
// direct get, no KV bucket (sealed tokens, users, sessions), no
// publishing of events or control requests. deploy/nats/nats.conf's dms
// users and `mailgate dms-credentials --nats-conf` give a DMS the same.
func dmsPermissions(customer string) *server.Permissions {
	name := dmsConsumer(customer)
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			"$JS.API.INFO",
			"$JS.API.CONSUMER.CREATE." + archive.StreamName + "." + name + ".mailgate." + customer + ".>",
			"$JS.API.CONSUMER.INFO." + archive.StreamName + "." + name,
			"$JS.API.CONSUMER.MSG.NEXT." + archive.StreamName + "." + name,
			"$JS.API.CONSUMER.DELETE." + archive.StreamName + "." + name,
			"$JS.ACK." + archive.StreamName + "." + name + ".>",
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{dmsInboxPrefix(customer) + ".>"}},
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
