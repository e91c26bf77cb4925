package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// subcommand is one line of a command group's help.
type subcommand struct {
	name, args, what string
}

// commandGroups are the commands that take a subcommand, with each
// subcommand's synopsis. run answers their help and refuses an unknown
// subcommand from this table before the command reaches for NATS, so help
// works on a host with no mailgate running.
func commandGroups() map[string][]subcommand {
	return map[string][]subcommand{
		"users": {
			{"add", "NAME --customer C [--group G]... [--password-file F|-]", "add a portal user (password from standard input by default)"},
			{"list", "", "list portal users"},
			{"remove", "NAME", "remove a portal user"},
		},
		"apikeys": {
			{"create", "--customer C [--name N]", "create a DMS API key; the key is printed once"},
			{"list", "", "list API keys (never the keys themselves)"},
			{"revoke", "ID", "revoke an API key"},
		},
		"tenants": {
			{"list", "", "list Microsoft tenants bound to customers"},
			{"bind", "TENANT_ID --customer C", "bind a Microsoft tenant to a customer"},
			{"unbind", "TENANT_ID", "remove a tenant's binding"},
		},
		"webhooks": {
			{"add", "--customer C --url URL [--type T]... [--subject-filter F]", "add a webhook endpoint; its signing secret is printed once"},
			{"list", "", "list webhook endpoints"},
			{"show", "ID", "show an endpoint"},
			{"deliveries", "ID", "show an endpoint's recent deliveries"},
			{"redeliver", "ID EVENT", "deliver an event to an endpoint again"},
			{"remove", "ID", "remove an endpoint"},
		},
		"connections": {
			{"list", "[--json]", "list mailbox connections"},
			{"show", "ID", "show a connection and its import status"},
			{"redeem", "CODE --customer C", "redeem a connection code from the portal (needs a running portal)"},
			{"test", "ID", "test a connection against Microsoft (needs a running portal)"},
			{"pause", "ID", "pause importing"},
			{"resume", "ID", "resume importing"},
			{"retry", "ID", "retry the connection's given-up mails"},
			{"delete", "ID", "delete a connection and wipe its tokens"},
			{"add-app", "--customer C --tenant T --client-id ID --client-secret-file F|- --mailbox ADDRESS [--backfill new|since|all] [--since YYYY-MM-DD] [--post move|mark_read|category|none] [--folder F] [--category C]", "connect a mailbox app-only with the customer's own app registration (needs a running portal)"},
		},
		"archive": {
			{"tail", "[--customer C] [--since TIME|--seq N]", "print archive events as they arrive"},
			{"get", "ID [-o FILE]", "fetch a document by its id"},
		},
	}
}

func isHelpArg(a string) bool {
	return a == "help" || a == "-h" || a == "-help" || a == "--help"
}

// groupHelp prints a command group's subcommands.
func groupHelp(w io.Writer, name string, subs []subcommand) {
	fmt.Fprintf(w, "Usage: mailgate %s SUBCOMMAND [flags]\n\nSubcommands:\n", name)
	for _, s := range subs {
		fmt.Fprintf(w, "  %s\n      %s\n", strings.TrimSpace(s.name+" "+s.args), s.what)
	}
	fmt.Fprintf(w, "\nRun \"mailgate %s SUBCOMMAND --help\" for a subcommand's flags.\n", name)
	fmt.Fprintln(w, "These commands reach a running mailgate through NATS (MAILGATE_NATS_URL, default the embedded server at MAILGATE_NATS_LISTEN); help needs none.")
}

// checkGroup answers a group's help (done, nil: exit 0) and refuses a
// missing or unknown subcommand (done, errUsage), all without a server.
func checkGroup(e *env, name string, args []string) (done bool, err error) {
	subs, ok := commandGroups()[name]
	if !ok {
		return false, nil
	}
	switch {
	case len(args) == 0:
		groupHelp(e.stderr, name, subs)
		return true, errUsage
	case isHelpArg(args[0]):
		groupHelp(e.stdout, name, subs)
		return true, nil
	case !slices.ContainsFunc(subs, func(s subcommand) bool { return s.name == args[0] }):
		fmt.Fprintf(e.stderr, "mailgate %s: unknown subcommand %q\n\n", name, args[0])
		groupHelp(e.stderr, name, subs)
		return true, errUsage
	}
	return false, nil
}
