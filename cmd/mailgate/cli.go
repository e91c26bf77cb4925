package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/term"

	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/importer"
	"github.com/mailgate/mailgate/portal"
)

// cliState is what a CLI command needs: configuration and a NATS connection
// to a running mailgate.
type cliState struct {
	cfg Config
	nc  *nats.Conn
	js  jetstream.JetStream
}

func (s *cliState) Close() {
	if s.nc != nil {
		s.nc.Close()
	}
}

// connectCLI parses the common flags (fs may carry the command's own) and
// connects to NATS, failing fast with a hint when no mailgate is running.
func connectCLI(ctx context.Context, e *env, fs *flag.FlagSet, args []string) (*cliState, []string, error) {
	cfg, rest, err := loadConfig(fs, args, e.getenv, e.environ)
	if err != nil {
		return nil, nil, configError(e, err)
	}
	s := &cliState{cfg: cfg}
	auth, err := cliNATSAuth(&cfg)
	if err != nil {
		return nil, nil, err
	}
	opts := append([]nats.Option{nats.Name("mailgate-cli"), nats.Timeout(5 * time.Second)}, auth...)
	url := cfg.natsURL()
	s.nc, err = nats.Connect(url, opts...)
	if errors.Is(err, nats.ErrAuthorization) && len(auth) == 0 {
		return nil, nil, fmt.Errorf("NATS at %s wants credentials: run with the MAILGATE_DATA_DIR of `mailgate serve` (its CLI credentials are in %s) or set MAILGATE_NATS_CREDS: %w",
			redactURL(url), natsAuthDir(cfg.DataDir), err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("cannot reach NATS at %s (is `mailgate serve` running, or MAILGATE_NATS_URL set?): %w", redactURL(url), err)
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		s.nc.Close()
		return nil, nil, err
	}
	s.js = js
	if cfg.NATSCreds == "" && cfg.NATSUser == "" && fileExists(natsSeedFile(cfg.DataDir, natsRoleCLI)) {
		// The embedded server's cli identity may not create or change
		// streams; with the operator's own credentials the CLI may.
		s.js = bindOnly{js}
	}
	return s, rest, nil
}

func portalUsers(ctx context.Context, js jetstream.JetStream) (*portal.Users, error) {
	return portal.NewUsers(ctx, js)
}

func portalAPIKeys(ctx context.Context, js jetstream.JetStream) (*portal.APIKeys, error) {
	return portal.NewAPIKeys(ctx, js)
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func usageError(e *env, format string, args ...any) error {
	fmt.Fprintf(e.stderr, "mailgate: "+format+"\n", args...)
	return errUsage
}

func cmdUsers(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageError(e, "users: want add, list or remove")
	}
	fs := newFlagSet(e, "users "+args[0])
	customer := fs.String("customer", "", "customer the user belongs to")
	var groups stringList
	fs.Var(&groups, "group", "group membership (repeatable), e.g. mailbox-connect")
	passwordFile := fs.String("password-file", "-", "file with the password, - = read from standard input")
	st, rest, err := connectCLI(ctx, e, fs, args[1:])
	if err != nil {
		return err
	}
	defer st.Close()
	users, err := portal.NewUsers(ctx, st.js)
	if err != nil {
		return err
	}
	switch args[0] {
	case "add":
		if len(rest) != 1 || *customer == "" {
			return usageError(e, "users add NAME --customer C [--group G]... [--password-file F|-]")
		}
		pw, err := readSecret(e, *passwordFile, "password for "+rest[0])
		if err != nil {
			return err
		}
		if err := users.Add(ctx, rest[0], *customer, pw, groups); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "user %s added to customer %s (groups: %s)\n", rest[0], *customer, strings.Join(groups, ", "))
	case "list":
		list, err := users.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tCUSTOMER\tGROUPS\tCREATED")
		for _, u := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, u.Customer, strings.Join(u.Groups, ","), u.CreatedAt.Format(time.DateTime))
		}
		return tw.Flush()
	case "remove":
		if len(rest) != 1 {
			return usageError(e, "users remove NAME")
		}
		if err := users.Remove(ctx, rest[0]); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "user %s removed\n", rest[0])
	default:
		return usageError(e, "users: unknown subcommand %q (want add, list or remove)", args[0])
	}
	return nil
}

// readSecret reads a secret from a file or, with "-", from standard input
// (one line), so it never appears in the process list or shell history.
func readSecret(e *env, file, what string) (string, error) {
	var r io.Reader
	if file == "-" {
		if f, ok := e.stdin.(interface{ Fd() uintptr }); ok && term.IsTerminal(int(f.Fd())) {
			fmt.Fprintf(e.stderr, "%s: ", what)
		}
		r = e.stdin
	} else {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return "", fmt.Errorf("%s: empty", what)
	}
	return line, nil
}

func cmdAPIKeys(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageError(e, "apikeys: want create, list or revoke")
	}
	fs := newFlagSet(e, "apikeys "+args[0])
	customer := fs.String("customer", "", "customer the key acts for")
	name := fs.String("name", "DMS", "a name to recognise the key by")
	st, rest, err := connectCLI(ctx, e, fs, args[1:])
	if err != nil {
		return err
	}
	defer st.Close()
	keys, err := portal.NewAPIKeys(ctx, st.js)
	if err != nil {
		return err
	}
	switch args[0] {
	case "create":
		if *customer == "" {
			return usageError(e, "apikeys create --customer C [--name N]")
		}
		secret, k, err := keys.Create(ctx, *customer, *name)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "API key %s for customer %s — shown once, store it in the DMS now:\n", k.ID, k.Customer)
		fmt.Fprintln(e.stdout, secret)
	case "list":
		list, err := keys.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tCUSTOMER\tNAME\tCREATED\tREVOKED")
		for _, k := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", k.ID, k.Customer, k.Name, k.CreatedAt.Format(time.DateTime), k.Revoked)
		}
		return tw.Flush()
	case "revoke":
		if len(rest) != 1 {
			return usageError(e, "apikeys revoke ID")
		}
		if err := keys.Revoke(ctx, rest[0]); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "API key %s revoked\n", rest[0])
	default:
		return usageError(e, "apikeys: unknown subcommand %q (want create, list or revoke)", args[0])
	}
	return nil
}

func cmdConnections(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageError(e, "connections: want list, show, redeem, test, pause, resume, retry, delete or add-app")
	}
	fs := newFlagSet(e, "connections "+args[0])
	customer := fs.String("customer", "", "customer (redeem, add-app)")
	tenant := fs.String("tenant", "", "Microsoft tenant id (add-app)")
	clientID := fs.String("client-id", "", "application (client) id of the customer's app registration (add-app)")
	fs.Func("client-secret", "not accepted: use --client-secret-file F|- (add-app)", func(string) error {
		return errors.New("not accepted on the command line, where it shows in the process list: use --client-secret-file FILE, or - for standard input")
	})
	clientSecretFile := fs.String("client-secret-file", "", "file with the client secret, - = standard input (add-app)")
	secretExpires := fs.String("secret-expires", "", "expiry date of the client secret, YYYY-MM-DD (add-app)")
	mailbox := fs.String("mailbox", "", "mailbox address (add-app)")
	backfill := fs.String("backfill", "", "existing mail to import: new (default), since or all (add-app)")
	since := fs.String("since", "", "with --backfill since: import mail received since this date, YYYY-MM-DD (add-app)")
	post := fs.String("post", "", "after import: move (default), mark_read, category or none (add-app)")
	folder := fs.String("folder", "", "with --post move: the folder to move mail to, default Archiviert (add-app)")
	category := fs.String("category", "", "with --post category: the category to add (add-app)")
	asJSON := fs.Bool("json", false, "print JSON")
	mailKey := fs.String("mail", "", "only this given-up mail, by its key from connections show (retry)")
	st, rest, err := connectCLI(ctx, e, fs, args[1:])
	if err != nil {
		return err
	}
	defer st.Close()
	store, err := connector.NewStore(ctx, st.js, connector.StoreOptions{})
	if err != nil {
		return err
	}
	one := func(usage string) (string, error) {
		if len(rest) != 1 {
			return "", usageError(e, "connections %s", usage)
		}
		return rest[0], nil
	}
	switch args[0] {
	case "list":
		list, err := store.List(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e, redactConnections(list))
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tCUSTOMER\tMAILBOX\tMODE\tSTATE\tUPDATED")
		for _, c := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Customer, c.Mailbox, c.Mode, c.State, c.UpdatedAt.Format(time.DateTime))
		}
		return tw.Flush()
	case "show":
		id, err := one("show ID")
		if err != nil {
			return err
		}
		c, err := store.Get(ctx, id)
		if err != nil {
			return err
		}
		statuses, err := importer.NewStatusReader(ctx, st.js, st.cfg.NATSReplicas)
		if err != nil {
			return err
		}
		status, err := statuses.Status(ctx, id)
		if err != nil {
			return err
		}
		// Parked mails as they are now, not as of the last pass.
		if parked, err := statuses.Parked(ctx, id); err == nil {
			status.ParkedMails, status.Parked, status.GivenUp = parked, 0, 0
			for _, pm := range parked {
				if pm.GaveUp {
					status.GivenUp++
				} else {
					status.Parked++
				}
			}
		}
		// The connection without its secrets, and what the importer did
		// with it: last and next sync, counts by skip reason, backfill
		// progress, recent history.
		// Backfill words the backfill's progress for a person.
		return printJSON(e, struct {
			Connection connector.Connection `json:"connection"`
			Import     importer.Status      `json:"import"`
			Backfill   string               `json:"backfill,omitempty"`
		}{redactConnections([]connector.Connection{c})[0], status, status.Backfill.Summary()})
	case "pause", "resume":
		id, err := one(args[0] + " ID")
		if err != nil {
			return err
		}
		to := connector.StatePaused
		if args[0] == "resume" {
			to = connector.StateActive
		}
		c, err := store.Update(ctx, id, func(c *connector.Connection) error {
			c.State = to
			c.UpdatedBy = "cli"
			return nil
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "connection %s is %s\n", c.ID, c.State)
	case "delete":
		id, err := one("delete ID")
		if err != nil {
			return err
		}
		c, err := store.Delete(ctx, id, "cli")
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "connection %s deleted; its tokens are wiped. Remove mailgate's permissions in Microsoft Entra (Enterprise applications) as well.\n", c.ID)
	case "retry":
		// Given-up mails (connections show lists them under
		// import.parkedMails) get a new round of retries on the next poll.
		id, err := one("retry ID [--mail KEY]")
		if err != nil {
			return err
		}
		if _, err := store.Get(ctx, id); err != nil {
			return err
		}
		statuses, err := importer.NewStatusReader(ctx, st.js, st.cfg.NATSReplicas)
		if err != nil {
			return err
		}
		n, err := statuses.Retry(ctx, id, *mailKey)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%d given-up mails of connection %s are retried on its next poll\n", n, id)
	case "redeem":
		code, err := one("redeem CODE --customer C")
		if err != nil {
			return err
		}
		if *customer == "" {
			return usageError(e, "connections redeem CODE --customer C")
		}
		var res controlResult
		if err := control(ctx, st.nc, cliSecretKey(&st.cfg), "redeem", controlRequest{Customer: *customer, Code: code, Actor: "cli"}, &res); err != nil {
			return err
		}
		return printResult(e, res)
	case "test":
		id, err := one("test ID")
		if err != nil {
			return err
		}
		var res controlResult
		if err := control(ctx, st.nc, cliSecretKey(&st.cfg), "test", controlRequest{ConnectionID: id, Actor: "cli"}, &res); err != nil {
			return err
		}
		return printResult(e, res)
	case "add-app":
		if *customer == "" || *tenant == "" || *clientID == "" || *mailbox == "" || *clientSecretFile == "" {
			return usageError(e, "connections add-app --customer C --tenant TENANT_ID --client-id ID --client-secret-file F|- --mailbox ADDRESS [--secret-expires YYYY-MM-DD] [--backfill new|since|all] [--since YYYY-MM-DD] [--post move|mark_read|category|none] [--folder F] [--category C]")
		}
		bf, pp, err := addAppChoices(*backfill, *since, *post, *folder, *category, time.Now())
		if err != nil {
			return usageError(e, "connections add-app: %v", err)
		}
		secret, err := readSecret(e, *clientSecretFile, "client secret")
		if err != nil {
			return err
		}
		req := controlRequest{Customer: *customer, TenantID: *tenant, ClientID: *clientID, ClientSecret: secret, Mailbox: *mailbox, Actor: "cli",
			Backfill: &bf, PostProcess: &pp}
		if *secretExpires != "" {
			t, err := time.Parse(time.DateOnly, *secretExpires)
			if err != nil {
				return usageError(e, "--secret-expires %q: want YYYY-MM-DD", *secretExpires)
			}
			req.SecretExpiresAt = t
		}
		var res controlResult
		if err := control(ctx, st.nc, cliSecretKey(&st.cfg), "add-app", req, &res); err != nil {
			return err
		}
		return printResult(e, res)
	default:
		return usageError(e, "connections: unknown subcommand %q", args[0])
	}
	return nil
}

// redactConnections drops sealed secrets before anything is printed.
func redactConnections(list []connector.Connection) []connector.Connection {
	out := make([]connector.Connection, len(list))
	for i, c := range list {
		c.RefreshToken = nil
		c.ClientSecret = nil
		out[i] = c
	}
	return out
}

func printJSON(e *env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printResult(e *env, r controlResult) error {
	c := r.Connection
	fmt.Fprintf(e.stdout, "connection %s (%s, customer %s) is %s\n", c.ID, c.Mailbox, c.Customer, c.State)
	fmt.Fprintf(e.stdout, "test: read %v, write %v", r.Test.CanRead, r.Test.CanWrite)
	if r.Test.Detail != "" {
		fmt.Fprintf(e.stdout, " — %s", r.Test.Detail)
	}
	fmt.Fprintln(e.stdout)
	if c.State != connector.StateActive {
		return fmt.Errorf("connection is %s: %s", c.State, c.LastError)
	}
	return nil
}

// bindOnly is the CLI's JetStream: it opens the streams and buckets that
// `mailgate serve` creates and never creates or changes one, which the
// embedded server's cli identity may not do (cliPermissions). The
// packages' constructors ask for create-or-update; for the CLI that means
// "bind to the existing one".
type bindOnly struct{ jetstream.JetStream }

func (b bindOnly) bindKV(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	kv, err := b.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("KV bucket %s does not exist yet (start `mailgate serve` once): %w", bucket, err)
	}
	return kv, err
}

func (b bindOnly) bindStream(ctx context.Context, name string) (jetstream.Stream, error) {
	s, err := b.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("stream %s does not exist yet (start `mailgate serve` once): %w", name, err)
	}
	return s, err
}

func (b bindOnly) CreateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return b.bindKV(ctx, cfg.Bucket)
}

func (b bindOnly) UpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return b.bindKV(ctx, cfg.Bucket)
}

func (b bindOnly) CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return b.bindKV(ctx, cfg.Bucket)
}

func (b bindOnly) CreateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return b.bindStream(ctx, cfg.Name)
}

func (b bindOnly) UpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return b.bindStream(ctx, cfg.Name)
}

func (b bindOnly) CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return b.bindStream(ctx, cfg.Name)
}
