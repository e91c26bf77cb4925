package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/mailgate/mailgate/connector"
)

// cmdTenants shows and changes which customer a Microsoft tenant belongs
// to. The portal binds a tenant when its administrator proves it; only the
// operator moves a bound tenant to another customer, here.
func cmdTenants(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageError(e, "tenants: want list, bind or unbind")
	}
	fs := newFlagSet(e, "tenants "+args[0])
	customer := fs.String("customer", "", "customer the tenant belongs to (bind)")
	st, rest, err := connectCLI(ctx, e, fs, args[1:])
	if err != nil {
		return err
	}
	defer st.Close()
	store, err := connector.NewStore(ctx, st.js, connector.StoreOptions{})
	if err != nil {
		return err
	}
	switch args[0] {
	case "list":
		list, err := store.TenantBindings(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TENANT\tCUSTOMER\tBOUND BY\tSINCE")
		for _, b := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", b.TenantID, b.Customer, b.BoundBy, b.CreatedAt.Format(time.DateTime))
		}
		return tw.Flush()
	case "bind":
		if len(rest) != 1 || *customer == "" {
			return usageError(e, "tenants bind TENANT_ID --customer C")
		}
		b, err := store.RebindTenant(ctx, rest[0], *customer, "cli")
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "tenant %s bound to customer %s\n", b.TenantID, b.Customer)
	case "unbind":
		if len(rest) != 1 {
			return usageError(e, "tenants unbind TENANT_ID")
		}
		if err := store.UnbindTenant(ctx, rest[0]); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "tenant %s unbound\n", rest[0])
	default:
		return usageError(e, "tenants: unknown subcommand %q (want list, bind or unbind)", args[0])
	}
	return nil
}
