// Command mailgate is the mailbox import gateway: it connects Microsoft 365
// invoice mailboxes, archives their attachments in S3-compatible storage and
// announces each document on NATS JetStream.
//
// Run `mailgate help` for the subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	_ "time/tzdata" // MAILGATE_TIMEZONE works in images without a zone database
)

const usage = `mailgate — mailbox import gateway for document management

Usage:
  mailgate serve [--role portal|importer|all] [flags]   run the gateway
  mailgate demo [flags]                                 serve + a simulated Microsoft 365 with a sample invoice mailbox
  mailgate sim [--addr 127.0.0.1:9090]                  the Microsoft 365 simulator alone
  mailgate users add NAME --customer C [--group G]... | list | remove NAME
  mailgate apikeys create --customer C [--name N] | list | revoke ID
  mailgate tenants list | bind TENANT_ID --customer C | unbind TENANT_ID
  mailgate webhooks add --customer C --url URL [--type T]... | list | show ID | deliveries ID | redeliver ID EVENT | remove ID
  mailgate connections list | show ID | redeem CODE --customer C | test ID | pause ID | resume ID | delete ID
  mailgate connections add-app --customer C --tenant T --client-id ID --client-secret-file F|- --mailbox ADDRESS
                              [--backfill new|since|all] [--since YYYY-MM-DD] [--post move|mark_read|category|none] [--folder F] [--category C]
  mailgate archive tail [--customer C] [--since TIME|--seq N] | get ID [-o FILE]
  mailgate dms-credentials CUSTOMER [--nats-conf]         the NATS identity of a customer's DMS (its events only)
  mailgate bench
  mailgate healthcheck [URL]                            exit 0 when URL (default: /readyz of MAILGATE_HTTP_ADDR) answers 200
  mailgate version

Every flag also reads MAILGATE_<NAME> from the environment (--data-dir ↔ MAILGATE_DATA_DIR).
Commands other than serve, demo and sim reach a running mailgate through NATS
(MAILGATE_NATS_URL, default the embedded server at MAILGATE_NATS_LISTEN).
Run "mailgate COMMAND --help" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runEnv(ctx, os.Args[1:], &env{getenv: os.Getenv, environ: os.Environ(), stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr})
	stop()
	os.Exit(code)
}

// env bundles what a command may touch of its process, so tests can run
// commands in-process.
type env struct {
	getenv  func(string) string
	environ []string // KEY=VALUE, to refuse unknown MAILGATE_* names; nil in tests that run in-process
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
}

// errUsage marks an error whose message has already been printed with usage.
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runEnv(ctx, args, &env{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr})
}

func runEnv(ctx context.Context, args []string, e *env) int {
	stdout, stderr := e.stdout, e.stderr
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmds := map[string]func(context.Context, *env, []string) error{
		"serve":           cmdServe,
		"demo":            cmdDemo,
		"sim":             cmdSim,
		"users":           cmdUsers,
		"apikeys":         cmdAPIKeys,
		"tenants":         cmdTenants,
		"webhooks":        cmdWebhooks,
		"connections":     cmdConnections,
		"archive":         cmdArchive,
		"bench":           cmdBench,
		"healthcheck":     cmdHealthcheck,
		"version":         cmdVersion,
		"dms-credentials": cmdDMSCredentials,
	}
	if isHelpArg(args[0]) {
		// `mailgate help users` is `mailgate users --help`.
		if len(args) < 2 {
			fmt.Fprint(stdout, usage)
			return 0
		}
		args = []string{args[1], "--help"}
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "mailgate: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	done, err := checkGroup(e, args[0], args[1:])
	if !done {
		err = cmd(ctx, e, args[1:])
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return 0
	}
	fmt.Fprintf(stderr, "mailgate %s: %v\n", args[0], err)
	return 1
}

func cmdVersion(_ context.Context, e *env, _ []string) error {
	fmt.Fprintln(e.stdout, "mailgate", version())
	return nil
}

func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v + " " + bi.GoVersion
}

// newLogger writes JSON logs to w at the configured level.
func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// newFlagSet makes a flag set that reports errors instead of exiting.
func newFlagSet(e *env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("mailgate "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}
