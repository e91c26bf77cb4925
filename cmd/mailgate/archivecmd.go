package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/cmd/mailgate/bench"
	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/connector/graphtest"
	"github.com/mailgate/mailgate/importer"
)

func cmdArchive(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageError(e, "archive: want tail or get")
	}
	fs := newFlagSet(e, "archive "+args[0])
	customer := fs.String("customer", "", "only events of this customer (tail)")
	since := fs.String("since", "", "replay events from this time, RFC 3339 or a duration such as 24h (tail)")
	seq := fs.Uint64("seq", 0, "replay events from this stream sequence (tail)")
	out := fs.String("o", "-", "where to write the document, - = standard output (get)")
	timeout := fs.Duration("timeout", 0, "stop after this long; 0 = follow until interrupted (tail)")
	st, rest, err := connectCLI(ctx, e, fs, args[1:])
	if err != nil {
		return err
	}
	defer st.Close()
	switch args[0] {
	case "tail":
		cfg := archive.SubscribeConfig{Customer: *customer, StartSeq: *seq}
		if *since != "" {
			if d, err := time.ParseDuration(*since); err == nil {
				cfg.StartTime = time.Now().Add(-d)
			} else if t, err := time.Parse(time.RFC3339, *since); err == nil {
				cfg.StartTime = t
			} else {
				return usageError(e, "--since %q: want RFC 3339 time or a duration", *since)
			}
		}
		enc := json.NewEncoder(e.stdout)
		if *timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, *timeout)
			defer cancel()
		}
		return archive.Subscribe(ctx, st.js, cfg, func(_ context.Context, d *archive.Delivery) error {
			return enc.Encode(d.Event)
		})
	case "get":
		if len(rest) != 1 {
			return usageError(e, "archive get DOCUMENT_ID [-o FILE]")
		}
		rec, err := importer.LookupDocument(ctx, st.js, rest[0])
		if err != nil {
			return err
		}
		if rec.State != "done" {
			return fmt.Errorf("document %s was not archived: skipped (%s) %s", rec.ID, rec.Reason, rec.Detail)
		}
		store, err := openStore(ctx, &st.cfg)
		if err != nil {
			return err
		}
		rc, info, err := store.Get(ctx, rec.ObjectKey)
		if err != nil {
			return err
		}
		defer rc.Close()
		w := e.stdout
		if *out != "-" {
			f, err := os.Create(*out)
			if err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		if _, err := io.Copy(w, rc); err != nil {
			return fmt.Errorf("archive get: %w", err)
		}
		if *out != "-" {
			fmt.Fprintf(e.stderr, "wrote %s (%s, %d bytes, %s)\n", *out, info.Name, info.Size, info.ContentType)
		}
		return nil
	}
	return usageError(e, "archive: unknown subcommand %q (want tail or get)", args[0])
}

func cmdSim(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "sim")
	addr := fs.String("addr", "127.0.0.1:9090", "listen address")
	mailboxes := fs.Int("mailboxes", 0, "add this many empty shared mailboxes "+bench.SimMailboxFormat+" (for `mailgate bench`)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	sim := graphtest.NewUnstartedServer()
	bench.AddSimMailboxes(sim, *mailboxes)
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(e.stdout, "Microsoft 365 simulator on %s\n", base)
	fmt.Fprintf(e.stdout, "  MAILGATE_LOGIN_URL=%s\n  MAILGATE_GRAPH_URL=%s/v1.0\n", base, base)
	fmt.Fprintf(e.stdout, "  MAILGATE_MS_CLIENT_ID=%s\n  MAILGATE_MS_CLIENT_SECRET=%s\n", graphtest.DefaultClientID, graphtest.DefaultClientSecret)
	fmt.Fprintf(e.stdout, "  tenant %s (%s), user %s / %s, shared mailbox %s\n", graphtest.DefaultTenantID, graphtest.DefaultTenantDomain,
		graphtest.DefaultUser, graphtest.DefaultPassword, graphtest.DefaultMailbox)
	fmt.Fprintf(e.stdout, "  control API: %s/_sim/ (deliver mail: POST /_sim/mailboxes/{address}/messages)\n", base)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	case err := <-errc:
		return err
	}
}

func cmdBench(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "bench")
	var opts bench.Options
	only := fs.String("only", "", "run only these scenarios, comma separated: "+strings.Join(bench.Scenarios(), ","))
	post := fs.String("post-process", "move", "what happens to an imported mail: move (to Archiviert, a connection's default), mark_read, category, none")
	fs.Float64Var(&opts.Scale, "scale", 1, "multiply mail counts and large sizes (0.05 = smoke test)")
	fs.DurationVar(&opts.IdlePoll, "idle-poll", 30*time.Second, "poll interval of the idle scenario")
	fs.DurationVar(&opts.LimitWindow, "limit-window", 10*time.Second, "Microsoft's 10-minute request window, scaled down")
	fs.StringVar(&opts.MinIO, "minio", "", "minio binary (default: PATH, then $(go env GOPATH)/bin)")
	fs.BoolVar(&opts.NoMinIO, "no-minio", false, "use the directory archive and plain file writes as the ceiling")
	fs.StringVar(&opts.Dir, "dir", "", "temporary files (removed at the end)")
	fs.IntVar(&opts.ScaleMailboxes, "scale-mailboxes", 0, "idle mailboxes of the idle-scale scenario (default 10000 × --scale)")
	fs.DurationVar(&opts.ScalePoll, "scale-poll", time.Minute, "poll interval of the idle-scale scenario")
	fs.DurationVar(&opts.ScaleMeasure, "scale-measure", 0, "how long the idle-scale scenario measures (default 2 poll intervals)")
	fs.IntVar(&opts.ScaleReplicas, "scale-replicas", 1, "importer replicas the idle-scale scenario runs in one process (they share the polls)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *only != "" {
		opts.Only = strings.Split(*only, ",")
	}
	opts.PostProcess = connector.PostAction(*post)
	opts.StartSim = startSimProcess
	_, err := bench.Run(ctx, opts, e.stdout)
	return err
}

// startSimProcess runs `mailgate sim` with mailboxes idle mailboxes in a
// process of its own, so that the benchmark does not count its CPU, and
// returns its base URL once it listens.
func startSimProcess(ctx context.Context, mailboxes int) (string, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, fmt.Errorf("bench: simulator: %w", err)
	}
	cmd := exec.CommandContext(ctx, exe, "sim", "--addr", "127.0.0.1:0", "--mailboxes", strconv.Itoa(mailboxes))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, fmt.Errorf("bench: simulator: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("bench: simulator: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		stop()
		return "", nil, fmt.Errorf("bench: simulator printed nothing: %v", sc.Err())
	}
	base, ok := strings.CutPrefix(sc.Text(), "Microsoft 365 simulator on ")
	if !ok {
		stop()
		return "", nil, fmt.Errorf("bench: simulator: unexpected first line %q", sc.Text())
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return base, stop, nil
}
