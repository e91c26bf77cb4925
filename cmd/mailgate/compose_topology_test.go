package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/cmd/mailgate/samples"
	"github.com/mailgate/mailgate/connector/graphtest"
	"github.com/mailgate/mailgate/internal/minioproc"
)

// runtimeUID is the distroless nonroot user the image runs as.
const runtimeUID = 65532

// composeRoot is a directory tree standing in for the containers' file
// systems: each service's mounts land under root/<service>, as the
// compose file places them in the container.
type composeRoot struct {
	t    *testing.T
	f    *composeFile
	root string
}

// host returns the path on this machine of a host path of the compose file
// (./deploy/... in the repository, ./secrets/... where deploy/secrets.sh
// wrote them).
func (c *composeRoot) host(p string) string {
	if strings.HasPrefix(p, "./secrets/") {
		return filepath.Join(c.root, p)
	}
	return filepath.Join("../..", p)
}

// mount copies the files a service mounts (bind mounts and secrets) to
// where its container sees them, keeping their modes, and returns the
// service's root.
func (c *composeRoot) mount(service string) string {
	c.t.Helper()
	dir := filepath.Join(c.root, service)
	for inContainer, onHost := range c.f.mounts(c.f.Services[service]) {
		b, err := os.ReadFile(c.host(onHost))
		if err != nil {
			c.t.Fatalf("%s: mount %s: %v", service, onHost, err)
		}
		fi, _ := os.Stat(c.host(onHost))
		dst := filepath.Join(dir, inContainer)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			c.t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, fi.Mode().Perm()); err != nil {
			c.t.Fatal(err)
		}
		if err := os.Chmod(dst, fi.Mode().Perm()); err != nil {
			c.t.Fatal(err)
		}
	}
	return dir
}

// interpolate resolves the compose file's ${VAR:?message} and
// ${VAR:-default} from vars.
func interpolate(v string, vars map[string]string) string {
	return interpolation.ReplaceAllStringFunc(v, func(m string) string {
		sub := interpolation.FindStringSubmatch(m)
		if val, ok := vars[sub[1]]; ok {
			return val
		}
		if sub[2] == "-" {
			return sub[3]
		}
		return ""
	})
}

var interpolation = regexp.MustCompile(`\$\{(\w+)(?::([?-])([^}]*))?\}`)

// bigInvoicePDF is an invoice PDF of about size bytes: one page of text and
// an incompressible scanned appendix, as a scanned invoice arrives.
func bigInvoicePDF(number string, size int, seed uint64) []byte {
	head := samples.InvoicePDF("Lieferant GmbH", number, 1234.5, time.Now().UTC())
	// Keep the small PDF's objects and xref; add the appendix as an extra
	// object after them, with its own xref section (an incremental update).
	r := rand.New(rand.NewPCG(seed, 7))
	pad := make([]byte, size)
	for i := range pad {
		pad[i] = byte(r.Uint32())
	}
	prevXref := bytes.LastIndex(head, []byte("startxref\n"))
	prev, _ := strconv.Atoi(strings.Fields(string(head[prevXref+len("startxref\n"):]))[0])
	var b bytes.Buffer
	b.Write(head)
	off := b.Len()
	fmt.Fprintf(&b, "99 0 obj\n<< /Type /XObject /Subtype /Image /Width 1 /Height 1 /ColorSpace /DeviceGray /BitsPerComponent 8 /Length %d >>\nstream\n", len(pad))
	b.Write(pad)
	b.WriteString("\nendstream\nendobj\n")
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n99 1\n%010d 00000 n \ntrailer\n<< /Size 100 /Root 1 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n", off, prev, xref)
	return b.Bytes()
}

// TestComposeTopology runs docker-compose.yml as processes, as an operator
// starts it: credentials made by deploy/secrets.sh and mounted where the
// compose file mounts them, a 3-node NATS cluster from deploy/nats/nats.conf
// with the compose command line, MinIO with its root credentials from
// files, and the portal and two importers with the compose environment,
// each as uid 65532 on a data dir of its own that belongs to that user,
// started once the NATS nodes' and MinIO's healthchecks pass. Then:
//   - attachments above 1 MiB (1.5 to 8 MB) are imported exactly once, also
//     across a rolling restart of both importers (docs/deployment.md);
//   - the compose healthchecks (mailgate healthcheck) pass;
//   - the DMS user of customer firma reads its events and nothing else;
//   - the cluster refuses clients without credentials, and nodes without
//     the route password.
func TestComposeTopology(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("TestComposeTopology runs mailgate as uid 65532 with setpriv and must run as root in CI")
		}
		t.Skip("runs mailgate as uid 65532 (the image's user) with setpriv, which needs root; run as root or in CI")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) is needed to run mailgate as uid %d: %v", runtimeUID, err)
	}
	minioBin, err := minioproc.Find("")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skipf("%v; install it with go install github.com/minio/minio@latest", err)
	}
	// minio-init's client: the MinIO client mc, beside minio.
	mcBin, err := exec.LookPath("mc")
	if err != nil {
		mcBin = filepath.Join(filepath.Dir(minioBin), "mc")
		if _, serr := os.Stat(mcBin); serr != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("the MinIO client mc (compose service minio-init) is needed: %v", serr)
			}
			t.Skipf("the MinIO client mc (compose service minio-init) is needed: %v; install it with go install github.com/minio/mc@latest", serr)
		}
	}
	bin := mailgateBinary(t)
	f := readCompose(t)
	root, err := os.MkdirTemp("", "mailgate-compose-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil { // reachable for uid 65532, as / is in a container
		t.Fatal(err)
	}
	c := &composeRoot{t: t, f: f, root: root}
	ctx := context.Background()

	// The credentials, as the operator makes them once. On loopback the
	// nodes' route addresses are ports instead of the service names.
	nodes := f.natsNodes()
	clusterPorts := freePorts(t, len(nodes))
	script := []string{"../../deploy/secrets.sh", filepath.Join(root, "secrets")}
	for _, p := range clusterPorts {
		script = append(script, fmt.Sprintf("127.0.0.1:%d", p))
	}
	cmd := exec.Command("sh", script...)
	cmd.Env = append(os.Environ(), "MAILGATE_MS_CLIENT_SECRET="+graphtest.DefaultClientSecret)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("deploy/secrets.sh: %v\n%s", err, out)
	}
	readSecret := func(name string) string {
		b, err := os.ReadFile(filepath.Join(root, "secrets", name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}

	// The NATS nodes: each service's command line on its mounted files,
	// through nats-server's own option parsing. What a container gives a
	// node for free, its own addresses, is set after the command line:
	// loopback ports, and the store dir of its volume. startNode runs the
	// command line of service, its /etc/nats files under dir, as node name.
	startNode := func(service, name, dir string, clusterPort int) *server.Server {
		t.Helper()
		args := slices.Clone(f.Services[service].Command)
		for j, a := range args {
			if strings.HasPrefix(a, "/etc/nats/") {
				args[j] = filepath.Join(dir, a)
			}
			if j > 0 && args[j-1] == "--server_name" {
				args[j] = name
			}
		}
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		opts, err := server.ConfigureOptions(fs, args, func() {}, func() {}, func() {})
		if err != nil {
			t.Fatalf("%s: nats-server %v: %v", name, args, err)
		}
		if opts.Cluster.Username == "" || opts.Cluster.Password == "" || len(opts.Users) == 0 {
			t.Fatalf("%s: nats.conf sets no route or client authorization", name)
		}
		opts.Host, opts.Port = "127.0.0.1", -1
		opts.HTTPPort = -1
		opts.Cluster.Host, opts.Cluster.Port = "127.0.0.1", clusterPort
		opts.StoreDir = filepath.Join(dir, "data")
		opts.NoLog, opts.NoSigs = true, true
		srv, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		go srv.Start()
		t.Cleanup(srv.Shutdown)
		return srv
	}
	var servers []*server.Server
	for i, n := range nodes {
		servers = append(servers, startNode(n, n, c.mount(n), clusterPorts[i]))
	}
	natsURLs := map[string]string{}
	for i, srv := range servers {
		if !srv.ReadyForConnections(20 * time.Second) {
			t.Fatalf("%s not ready", nodes[i])
		}
		natsURLs[nodes[i]] = srv.ClientURL()
	}

	// MinIO, with the root credentials of its secrets.
	minioDir := c.mount("minio")
	minioAddr, console := freePorts(t, 1)[0], freePorts(t, 1)[0]
	minioEnv := append(os.Environ(), "MINIO_BROWSER=off", "MINIO_UPDATE=off")
	for k, v := range f.Services["minio"].Environment {
		if strings.HasSuffix(k, "_FILE") && !strings.HasPrefix(v, "/") {
			v = "/run/secrets/" + v // MinIO reads relative names there
		}
		if strings.HasPrefix(v, "/run/secrets/") {
			v = filepath.Join(minioDir, v)
		}
		minioEnv = append(minioEnv, k+"="+v)
	}
	minioCmd := exec.Command(minioBin, "server", filepath.Join(minioDir, "data"), "--address", fmt.Sprintf("127.0.0.1:%d", minioAddr), "--console-address", fmt.Sprintf("127.0.0.1:%d", console), "--quiet")
	minioCmd.Env = minioEnv
	var minioOut bytes.Buffer
	minioCmd.Stdout, minioCmd.Stderr = &syncWriter{w: &minioOut}, &syncWriter{w: &minioOut}
	if err := minioCmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = minioCmd.Process.Kill(); _ = minioCmd.Wait() })

	// depends_on: service_healthy. The NATS healthcheck is the monitoring
	// port's /healthz (the cluster has a meta leader), MinIO's its live
	// probe.
	probes := map[string]string{"minio": fmt.Sprintf("http://127.0.0.1:%d/minio/health/live", minioAddr)}
	for i, srv := range servers {
		probes[nodes[i]] = "http://" + srv.MonitorAddr().String() + "/healthz"
	}
	for name, url := range probes {
		eventually(t, 60*time.Second, name+" healthy", func() bool {
			resp, err := http.Get(url)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}

	// minio-init, as compose runs it once MinIO is healthy: the bucket,
	// its policy and mailgate's own S3 user, by deploy/minio/init.sh.
	initDir := c.mount("minio-init")
	initCmd := exec.Command("sh", filepath.Join(initDir, f.Services["minio-init"].Entrypoint[1]))
	initCmd.Env = append(os.Environ(), "MC="+mcBin, "MC_CONFIG_DIR="+filepath.Join(initDir, "mc"),
		fmt.Sprintf("MINIO_URL=http://127.0.0.1:%d", minioAddr), "SECRETS="+filepath.Join(initDir, "run/secrets"))
	for k, v := range f.Services["minio-init"].Environment {
		if k != "MINIO_URL" {
			initCmd.Env = append(initCmd.Env, k+"="+v)
		}
	}
	if out, err := initCmd.CombinedOutput(); err != nil {
		t.Fatalf("minio-init: %v\n%s", err, out)
	}

	// The test's own view of the state, with mailgate's credentials.
	var urls []string
	for _, n := range nodes {
		urls = append(urls, natsURLs[n])
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.UserInfo("mailgate", readSecret("nats-mailgate-password")))
	if err != nil {
		t.Fatalf("mailgate's NATS credentials refused: %v", err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	key, err := parseKey(readSecret("mailgate-secret-key"))
	if err != nil {
		t.Fatal(err)
	}
	sim := graphtest.NewServer()
	t.Cleanup(sim.Close)
	mailgateEnv := f.Services["portal"].Environment
	in := &infra{
		sim: sim, natsURL: strings.Join(urls, ","), js: js, key: key, replicas: 3,
		s3: archive.S3Config{
			Endpoint:  fmt.Sprintf("127.0.0.1:%d", minioAddr),
			AccessKey: readSecret("minio-root-user"),
			SecretKey: readSecret("minio-root-password"),
			Bucket:    mailgateEnv["MAILGATE_S3_BUCKET"],
		},
	}

	// Mail with attachments above the 1 MiB the importer keeps in memory:
	// they go through its spool on its volume.
	mailboxes := []string{graphtest.DefaultMailbox}
	for i := 1; i <= 2; i++ {
		addr := "eingang" + strconv.Itoa(i) + "@firma.example"
		sim.AddMailbox(graphtest.Mailbox{Address: addr, DisplayName: "Eingang " + strconv.Itoa(i), Shared: true})
		mailboxes = append(mailboxes, addr)
	}
	delivered := map[string]int{} // sha256 -> size
	now := time.Now().UTC()
	for mi, mb := range mailboxes {
		in.addAppConnection(t, "firma", mb)
		for j, sizes := range [][]int{{1_500_000}, {8_000_000}, {1_500_000, 3_000_000}, {0}} {
			number := fmt.Sprintf("RE-%d-%d", mi, j)
			var atts []graphtest.Attachment
			for k, size := range sizes {
				content := samples.InvoicePDF("Lieferant GmbH", number, 99, now)
				if size > 0 {
					content = bigInvoicePDF(number, size, uint64(mi*100+j*10+k))
				}
				sum := sha256.Sum256(content)
				delivered[hex.EncodeToString(sum[:])] = len(content)
				atts = append(atts, graphtest.Attachment{Name: fmt.Sprintf("%s-%d.pdf", number, k), ContentType: "application/pdf", Content: content})
			}
			if _, err := sim.Deliver(mb, graphtest.Mail{
				From: "rechnung@lieferant.example", Subject: "Rechnung " + number, Body: "Anbei die Rechnung.",
				InternetMessageID: "<" + number + "@lieferant.example>", ReceivedAt: now.Add(-time.Duration(10-j) * time.Minute),
				Attachments: atts,
			}); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The image's binary, reachable for its user.
	if err := os.MkdirAll(filepath.Join(root, "usr/local/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	image := filepath.Join(root, "usr/local/bin/mailgate")
	if err := copyFile(bin, image, 0o755); err != nil {
		t.Fatal(err)
	}
	// The services' environment: the compose file's, with the container
	// paths under each service's root, the service names as loopback
	// addresses, and only the Microsoft endpoints added (the simulator).
	vars := map[string]string{"MAILGATE_MS_CLIENT_ID": graphtest.DefaultClientID, "PORTAL_DOMAIN": "mailgate.example.com"}
	serviceEnv := func(name, dir, httpAddr string) []string {
		var env []string
		for k, v := range f.Services[name].Environment {
			v = interpolate(v, vars)
			switch {
			case k == "MAILGATE_NATS_URL":
				for _, n := range nodes {
					v = strings.ReplaceAll(v, "nats://"+n+":4222", natsURLs[n])
				}
			case k == "MAILGATE_S3_ENDPOINT":
				v = in.s3.Endpoint
			case k == "MAILGATE_HTTP_ADDR":
				v = httpAddr // each container has its own port 8080
			case k == "MAILGATE_METRICS_ADDR":
				v = "127.0.0.1:0" // and its own port 9090
			case strings.HasPrefix(v, "/"):
				v = filepath.Join(dir, v)
			}
			env = append(env, k+"="+v)
		}
		return append(env,
			"MAILGATE_LOGIN_URL="+sim.LoginURL(),
			"MAILGATE_GRAPH_URL="+sim.GraphURL(),
			"MAILGATE_POLL_INTERVAL=5s",
		)
	}
	asRuntimeUser := func(args ...string) []string {
		return append([]string{fmt.Sprintf("--reuid=%d", runtimeUID), fmt.Sprintf("--regid=%d", runtimeUID), "--clear-groups", image}, args...)
	}
	var services []string
	for name, s := range f.Services {
		if s.Build != nil {
			services = append(services, name)
		}
	}
	slices.Sort(services)
	procs := map[string]*proc{}
	envs := map[string][]string{}
	for _, name := range services {
		dir := c.mount(name)
		// The image's /data: made in the build stage, owned by the runtime
		// user, and so is the fresh volume mounted there.
		data := filepath.Join(dir, "data")
		if err := os.Mkdir(data, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(data, runtimeUID, runtimeUID); err != nil {
			t.Fatal(err)
		}
		envs[name] = serviceEnv(name, dir, fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0]))
		procs[name] = startProc(t, setpriv, envs[name], asRuntimeUser(f.Services[name].Command...)...)
	}
	for _, name := range services {
		procs[name].waitFor(t, httpAddrRE, 2*time.Minute)
	}

	// The compose healthchecks pass: `mailgate healthcheck` with the
	// service's environment, as the container's healthcheck runs it.
	checkHealth := func(name string) {
		t.Helper()
		hc := f.Services[name].Healthcheck.Test[1:]
		if hc[0] != "/usr/local/bin/mailgate" {
			t.Fatalf("%s: healthcheck %v is not the image's mailgate", name, hc)
		}
		eventually(t, 30*time.Second, name+" healthcheck", func() bool {
			cmd := exec.Command(setpriv, asRuntimeUser(hc[1:]...)...)
			cmd.Env = envs[name]
			return cmd.Run() == nil
		})
	}
	for _, name := range services {
		checkHealth(name)
	}

	want := len(delivered)
	in.waitDistinct(t, want, 3*time.Minute)
	// Metrics are on each process's own listener (MAILGATE_METRICS_ADDR),
	// logged at start; the last is the running process's.
	metricsAddrRE := regexp.MustCompile(`"msg":"metrics listening","addr":"([^"]+)"`)
	// Who imported what, from each importer's own metrics.
	var importers []string
	for _, name := range services {
		if f.Services[name].Command[2] == "importer" {
			importers = append(importers, name)
		}
	}
	importedBy := func() map[string]string {
		by := map[string]string{}
		for _, name := range importers {
			logged := metricsAddrRE.FindAllStringSubmatch(procs[name].stderr(), -1)
			if len(logged) == 0 {
				t.Fatalf("%s logged no metrics address", name)
			}
			resp, err := http.Get("http://" + logged[len(logged)-1][1] + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if m := regexp.MustCompile(`(?m)^mailgate_documents_imported_total(?:\{[^}]*\})? (\S+)$`).FindSubmatch(b); m != nil {
				by[name] = string(m[1])
			}
		}
		return by
	}
	t.Logf("first wave: documents by importer: %v", importedBy())

	// A rolling upgrade as docs/deployment.md tells it, while a second wave
	// of mail is imported: each importer in turn is stopped with SIGTERM
	// (as compose stops a container), exits cleanly within the compose
	// stop_grace_period having released its leases, and starts again on
	// its volume under its name; the next is rolled once it is healthy.
	for mi, mb := range mailboxes {
		for j := 0; j < 150; j++ {
			number := fmt.Sprintf("RE2-%d-%03d", mi, j)
			content := samples.InvoicePDF("Lieferant GmbH", number, float64(j), now)
			if j%50 == 0 {
				content = bigInvoicePDF(number, 1_500_000, uint64(1000+mi*1000+j))
			}
			sum := sha256.Sum256(content)
			delivered[hex.EncodeToString(sum[:])] = len(content)
			if _, err := sim.Deliver(mb, graphtest.Mail{
				From: "rechnung@lieferant.example", Subject: "Rechnung " + number, Body: "Anbei die Rechnung.",
				InternetMessageID: "<" + number + "@lieferant.example>", ReceivedAt: now.Add(-time.Duration(200-j) * time.Second),
				Attachments: []graphtest.Attachment{{Name: number + ".pdf", ContentType: "application/pdf", Content: content}},
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	want = len(delivered)
	leases, err := js.KeyValue(ctx, "leases")
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range importers {
		// Roll while the wave is being imported, not after it.
		eventually(t, time.Minute, "the second wave to get going", func() bool {
			_, d, _ := in.tally(t)
			return d > len(delivered)-3*150+10
		})
		_, before, _ := in.tally(t)
		if before >= want && i == 0 {
			t.Fatalf("all %d documents were imported before the roll; it would test nothing", want)
		}
		p := procs[name]
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.done:
		case <-time.After(60 * time.Second): // the compose file's stop_grace_period
			t.Fatalf("%s did not stop within 60s of SIGTERM", name)
		}
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("%s exited with %v on SIGTERM, want a clean stop", name, err)
		}
		replica := f.Services[name].Environment["MAILGATE_REPLICA"]
		if keys, err := leases.Keys(ctx); err == nil {
			for _, k := range keys {
				if e, err := leases.Get(ctx, k); err == nil && string(e.Value()) == replica {
					t.Errorf("%s stopped but still holds the lease %s", name, k)
				}
			}
		} else if !errors.Is(err, jetstream.ErrNoKeysFound) {
			t.Fatal(err)
		}
		procs[name] = startProc(t, setpriv, envs[name], asRuntimeUser(f.Services[name].Command...)...)
		procs[name].waitFor(t, httpAddrRE, 2*time.Minute)
		checkHealth(name)
		t.Logf("rolled %s with %d of %d documents imported", name, before, want)
	}
	in.waitDistinct(t, want, 3*time.Minute)
	t.Logf("second wave: documents by importer since the roll: %v", importedBy())
	for _, name := range services {
		procs[name].stop()
	}

	// Exactly once: one event and one object per attachment, each with the
	// size and hash it was sent with.
	cl, err := minio.New(in.s3.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(in.s3.AccessKey, in.s3.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var big int
	for _, ev := range in.events(t) {
		d, ok := ev.Data.(*archive.Imported)
		if !ok {
			continue
		}
		seen[d.Document.SHA256]++
		size, sent := delivered[d.Document.SHA256]
		if !sent || int64(size) != d.Document.Size {
			t.Errorf("%s: %d bytes, sha256 %s: not an attachment that was sent", d.Document.Name, d.Document.Size, d.Document.SHA256)
			continue
		}
		info, err := cl.StatObject(ctx, d.Object.Bucket, d.Object.Key, minio.StatObjectOptions{})
		if err != nil || info.Size != int64(size) {
			t.Errorf("%s: object %s: %d bytes, %v; want %d", d.Document.Name, d.Object.Key, info.Size, err, size)
		}
		if size > 1<<20 {
			big++
		}
	}
	for sum := range delivered {
		if seen[sum] != 1 {
			t.Errorf("attachment %s… (%d bytes) imported %d times, want once", sum[:12], delivered[sum], seen[sum])
		}
	}
	if objects := in.objects(t); objects != want {
		t.Errorf("%d objects, want %d", objects, want)
	}
	// The importers ran as the runtime user: what they wrote belongs to it.
	for _, name := range services {
		if f.Services[name].Command[2] != "importer" {
			continue
		}
		spool := filepath.Join(root, name, "data", "spool")
		fi, err := os.Stat(spool)
		if err != nil {
			t.Errorf("%s: no spool in its data dir: %v", name, err)
			continue
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != runtimeUID {
			t.Errorf("%s: spool owned by uid %d, want %d", name, st.Uid, runtimeUID)
		}
	}
	t.Logf("%d attachments (%d above 1 MiB, up to 8 MB) imported once each, as uid %d, across a rolling restart of both importers", want, big, runtimeUID)

	// The DMS user reads the document events and nothing else.
	dmsErrs := make(chan error, 16)
	dms, err := nats.Connect(in.natsURL, nats.UserInfo("dms_firma", readSecret("nats-dms-password")), nats.CustomInboxPrefix(dmsInboxPrefix("firma")),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case dmsErrs <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatalf("the DMS user is refused: %v", err)
	}
	defer dms.Close()
	djs, _ := jetstream.New(dms)
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cons, err := djs.CreateOrUpdateConsumer(dctx, "MAILGATE", jetstream.ConsumerConfig{
		Durable: dmsConsumer("firma"), FilterSubject: "mailgate.firma.document.>", AckPolicy: jetstream.AckNonePolicy})
	if err != nil {
		t.Fatalf("the DMS user cannot consume its customer's events: %v", err)
	}
	read := 0
	for read < want {
		batch, err := cons.Fetch(want, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("DMS fetch: %v", err)
		}
		n := 0
		for range batch.Messages() {
			n++
		}
		if n == 0 {
			break
		}
		read += n
	}
	if read != want {
		t.Errorf("the DMS user read %d document events, want %d", read, want)
	}
	permissionDenied := func(what string) {
		t.Helper()
		select {
		case err := <-dmsErrs:
			if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(strings.ToLower(err.Error()), "permission") {
				t.Errorf("DMS %s: %v, want a permissions violation", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("DMS %s: allowed", what)
		}
	}
	for len(dmsErrs) > 0 {
		<-dmsErrs
	}
	if err := dms.Publish("mailgate.firma.document.imported", []byte(`{}`)); err == nil {
		_ = dms.Flush()
	}
	permissionDenied("publishes an event")
	if _, err := dms.SubscribeSync("_INBOX.>"); err == nil {
		_ = dms.Flush()
	}
	permissionDenied("listens to mailgate's replies")
	for _, bucket := range []string{"connections", "users", "sessions"} {
		kctx, kcancel := context.WithTimeout(ctx, 3*time.Second)
		if _, err := djs.KeyValue(kctx, bucket); err == nil {
			t.Errorf("the DMS user opens the KV bucket %s", bucket)
		}
		kcancel()
	}

	// Without credentials, or with wrong ones, no node lets a client in.
	for _, n := range nodes {
		for what, opts := range map[string][]nats.Option{
			"no credentials": nil,
			"wrong password": {nats.UserInfo("mailgate", "guess")},
			"the route user": {nats.UserInfo("route", readSecret("nats-route-password"))},
		} {
			conn, err := nats.Connect(natsURLs[n], append(opts, nats.MaxReconnects(0))...)
			if err == nil {
				conn.Close()
				t.Errorf("%s let a client in with %s", n, what)
			} else if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
				t.Errorf("%s, %s: %v, want an authorization error", n, what, err)
			}
		}
	}

	// Only a node with the route password joins the cluster: a node with
	// another installation's auth.conf gets no route, while one with this
	// installation's, started at the same time, does.
	other := filepath.Join(root, "other-secrets")
	script[1] = other
	cmd = exec.Command("sh", script...)
	cmd.Env = append(os.Environ(), "MAILGATE_MS_CLIENT_SECRET=x")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("deploy/secrets.sh: %v\n%s", err, out)
	}
	rogueDir, joinerDir := filepath.Join(root, "rogue"), filepath.Join(root, "nats-4")
	for dir, auth := range map[string]string{rogueDir: filepath.Join(other, "nats-auth.conf"), joinerDir: filepath.Join(root, "secrets", "nats-auth.conf")} {
		if err := os.MkdirAll(filepath.Join(dir, "etc/nats"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := copyFile("../../deploy/nats/nats.conf", filepath.Join(dir, "etc/nats/nats.conf"), 0o444); err != nil {
			t.Fatal(err)
		}
		if err := copyFile(auth, filepath.Join(dir, "etc/nats/auth.conf"), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	routesBefore := servers[0].NumRoutes()
	spare := freePorts(t, 2)
	rogue := startNode(nodes[0], "nats-rogue", rogueDir, spare[0])
	joiner := startNode(nodes[0], "nats-4", joinerDir, spare[1])
	eventually(t, 30*time.Second, "a node with the route password to join", func() bool { return joiner.NumRoutes() > 0 })
	eventually(t, 30*time.Second, "the cluster to route to the new node", func() bool { return servers[0].NumRoutes() > routesBefore })
	if n := rogue.NumRoutes(); n != 0 {
		t.Errorf("a node without the route password has %d routes into the cluster", n)
	}
	for i, srv := range servers {
		if rz, err := srv.Routez(nil); err == nil {
			for _, r := range rz.Routes {
				if r.RemoteName == "nats-rogue" {
					t.Errorf("%s routes to the node without the route password", nodes[i])
				}
			}
		}
	}
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
