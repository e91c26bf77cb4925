package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/archive/webhook"
	"github.com/mailgate/mailgate/connector"
)

const webhooksUsage = "webhooks add --customer C --url URL [--type T]... [--subject-filter F] | list | show ID | deliveries ID | redeliver ID EVENT | remove ID"

// cmdWebhooks manages webhook endpoints as the operator, for any customer.
// Adding one and redelivering need the secret key (MAILGATE_SECRET_KEY, or
// the demo's key in the data dir) to seal and open endpoint secrets.
func cmdWebhooks(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageError(e, webhooksUsage)
	}
	fs := newFlagSet(e, "webhooks "+args[0])
	customer := fs.String("customer", "", "customer whose events the endpoint receives")
	target := fs.String("url", "", "https URL of the receiver")
	var types stringList
	fs.Var(&types, "type", "event type to deliver (repeatable; default all)")
	filter := fs.String("subject-filter", "", "NATS subject pattern under mailgate.<customer>.")
	st, rest, err := connectCLI(ctx, e, fs, args[1:])
	if err != nil {
		return err
	}
	defer st.Close()
	var sealer webhook.Sealer
	key := st.cfg.SecretKey
	if key == nil {
		if b, err := os.ReadFile(filepath.Join(st.cfg.DataDir, "demo-secret.key")); err == nil {
			key, _ = parseKey(strings.TrimSpace(string(b)))
		}
	}
	if key != nil {
		if sealer, err = connector.NewSealer(key); err != nil {
			return err
		}
	}
	svc, err := webhook.New(ctx, st.js, sealer, archive.NewPublisher(st.js, "mailgate"), webhook.Config{
		AllowPrivate: st.cfg.WebhookAllowPrivate, Replicas: st.cfg.NATSReplicas,
	})
	if err != nil {
		return err
	}
	printJSON := func(v any) error {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	lookup := func() (webhook.Endpoint, error) {
		if len(rest) < 1 {
			return webhook.Endpoint{}, usageError(e, webhooksUsage)
		}
		ep, err := svc.Lookup(ctx, rest[0])
		if errors.Is(err, webhook.ErrNotFound) {
			return ep, fmt.Errorf("webhook %s not found", rest[0])
		}
		return ep, err
	}
	switch args[0] {
	case "add":
		if *customer == "" || *target == "" {
			return usageError(e, webhooksUsage)
		}
		if sealer == nil {
			return errors.New("webhooks add needs MAILGATE_SECRET_KEY (or MAILGATE_SECRET_KEY_FILE) to seal the endpoint's secret")
		}
		ep, secret, err := svc.Create(ctx, *customer, webhook.Registration{URL: *target, Types: types, SubjectFilter: *filter}, "cli")
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "webhook %s for customer %s — its signing secret is shown once, store it in the DMS now:\n", ep.ID, ep.Customer)
		fmt.Fprintln(e.stdout, secret)
	case "list":
		eps, err := svc.ListAll(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tCUSTOMER\tSTATE\tURL\tTYPES\tCREATED")
		for _, ep := range eps {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ep.ID, ep.Customer, ep.State, ep.URL, strings.Join(ep.Types, ","), ep.CreatedAt.Format(time.DateTime))
		}
		return tw.Flush()
	case "show":
		ep, err := lookup()
		if err != nil {
			return err
		}
		return printJSON(ep)
	case "deliveries":
		ep, err := lookup()
		if err != nil {
			return err
		}
		ds, err := svc.Deliveries(ctx, ep.Customer, ep.ID)
		if err != nil {
			return err
		}
		return printJSON(ds)
	case "redeliver":
		ep, err := lookup()
		if err != nil {
			return err
		}
		if len(rest) != 2 {
			return usageError(e, webhooksUsage)
		}
		d, err := svc.Redeliver(ctx, ep.Customer, ep.ID, rest[1])
		if err != nil {
			return err
		}
		return printJSON(d)
	case "remove":
		ep, err := lookup()
		if err != nil {
			return err
		}
		if _, err := svc.Delete(ctx, ep.Customer, ep.ID); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "webhook %s removed\n", ep.ID)
	default:
		return usageError(e, "webhooks: unknown subcommand %q; %s", args[0], webhooksUsage)
	}
	return nil
}
