package main

import (
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeFile is the part of docker-compose.yml the tests read.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Secrets  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
	Volumes map[string]any `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	User        string            `yaml:"user"`
	Command     []string          `yaml:"command"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Ports       []string          `yaml:"ports"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Secrets     []composeSecret   `yaml:"secrets"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// composeSecret is a service's secret in the short form (a name) or the
// long one (source and target).
type composeSecret struct {
	Source, Target string
}

func (s *composeSecret) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		s.Source = n.Value
		return nil
	}
	var long struct {
		Source string `yaml:"source"`
		Target string `yaml:"target"`
	}
	if err := n.Decode(&long); err != nil {
		return err
	}
	s.Source, s.Target = long.Source, long.Target
	return nil
}

// path is where the secret appears in the container.
func (s composeSecret) path() string {
	switch {
	case s.Target == "":
		return "/run/secrets/" + s.Source
	case strings.HasPrefix(s.Target, "/"):
		return s.Target
	}
	return "/run/secrets/" + s.Target
}

// mounts maps the container paths of a service's files (bind mounts and
// secrets) to their host paths relative to the repository.
func (f *composeFile) mounts(s composeService) map[string]string {
	m := map[string]string{}
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && strings.HasPrefix(parts[0], "./") {
			m[parts[1]] = parts[0]
		}
	}
	for _, sec := range s.Secrets {
		m[sec.path()] = f.Secrets[sec.Source].File
	}
	return m
}

// namedVolumes returns the named volumes of a service by mount point.
func namedVolumes(s composeService) map[string]string {
	m := map[string]string{}
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && !strings.HasPrefix(parts[0], ".") && !strings.HasPrefix(parts[0], "/") {
			m[parts[1]] = parts[0]
		}
	}
	return m
}

func readCompose(t *testing.T) *composeFile {
	t.Helper()
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return &f
}

// natsNodes returns the names of the NATS services, sorted.
func (f *composeFile) natsNodes() []string {
	var nodes []string
	for name, s := range f.Services {
		if strings.HasPrefix(s.Image, "nats:") {
			nodes = append(nodes, name)
		}
	}
	slices.Sort(nodes)
	return nodes
}

// dockerfile is the Dockerfile's instructions of the final stage, as
// "INSTRUCTION args" lines, continuation lines joined.
func dockerfile(t *testing.T) (build, final []string) {
	t.Helper()
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var stages [][]string
	var cur strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		in := cur.String()
		cur.Reset()
		if strings.HasPrefix(strings.ToUpper(in), "FROM ") {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], in)
		}
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: want a build and a runtime stage, got %d stages", len(stages))
	}
	return stages[0], stages[len(stages)-1]
}

// The image runs as the distroless nonroot user with a /data that exists
// and belongs to it; the binary checks its own health.
func TestDockerfile(t *testing.T) {
	build, final := dockerfile(t)
	has := func(lines []string, re string) bool {
		return slices.ContainsFunc(lines, regexp.MustCompile(re).MatchString)
	}
	checks := []struct {
		lines []string
		re    string
		what  string
	}{
		{build, `^RUN .*go build .*-o /out/mailgate \./cmd/mailgate`, "the build stage builds ./cmd/mailgate"},
		{build, `^RUN mkdir .*/out/data\b`, "the build stage makes the data directory (distroless has no shell)"},
		{final, `^FROM gcr\.io/distroless/static[-\w]*:nonroot$`, "the runtime is distroless nonroot"},
		{final, `^COPY --from=build /out/mailgate /usr/local/bin/mailgate$`, "the binary is at /usr/local/bin/mailgate"},
		{final, `^COPY --from=build --chown=65532:65532 /out/data /data$`, "/data is copied owned by 65532"},
		{final, `^USER 65532:65532$`, "the runtime user is 65532 by number"},
		{final, `^VOLUME /data$`, "/data is a volume"},
		{final, `^ENV .*MAILGATE_DATA_DIR=/data\b`, "the data dir is /data"},
		{final, `^HEALTHCHECK .*CMD \["/usr/local/bin/mailgate", "healthcheck"\]$`, "the image checks its health with mailgate healthcheck"},
	}
	for _, c := range checks {
		if !has(c.lines, c.re) {
			t.Errorf("Dockerfile: %s: no line matches %s", c.what, c.re)
		}
	}
	if has(final, `^USER (0|root)\b`) {
		t.Error("Dockerfile: the runtime stage runs as root")
	}
}

// No container engine runs here, so the compose file is kept honest by
// checking its structure against the configuration mailgate really reads
// and against TestComposeTopology, which runs it as processes.
func TestComposeFile(t *testing.T) {
	f := readCompose(t)
	known := map[string]bool{}
	secret := map[string]bool{}
	for _, s := range settings() {
		known["MAILGATE_"+s.name] = true
		if s.secret {
			secret["MAILGATE_"+s.name] = true
			known["MAILGATE_"+s.name+"_FILE"] = true
		}
	}
	script, err := os.ReadFile("../../deploy/secrets.sh")
	if err != nil {
		t.Fatal(err)
	}
	natsConf, err := os.ReadFile("../../deploy/nats/nats.conf")
	if err != nil {
		t.Fatal(err)
	}

	// Every secret is a file that deploy/secrets.sh writes.
	for name, s := range f.Secrets {
		if !strings.HasPrefix(s.File, "./secrets/") {
			t.Errorf("secret %s: file %q, want one under ./secrets/", name, s.File)
			continue
		}
		if !strings.Contains(string(script), " new "+path.Base(s.File)+" ") {
			t.Errorf("secret %s: deploy/secrets.sh does not write %s", name, s.File)
		}
	}
	// Each volume belongs to one service: no two importers share a spool.
	volumeOwner := map[string]string{}
	for name, s := range f.Services {
		for _, v := range namedVolumes(s) {
			if other, ok := volumeOwner[v]; ok {
				t.Errorf("volume %s is mounted by both %s and %s", v, other, name)
			}
			volumeOwner[v] = name
			if _, ok := f.Volumes[v]; !ok {
				t.Errorf("%s: volume %s is not declared", name, v)
			}
		}
		for _, sec := range s.Secrets {
			if _, ok := f.Secrets[sec.Source]; !ok {
				t.Errorf("%s: secret %s is not declared", name, sec.Source)
			}
		}
		for k, v := range s.Environment {
			upper := strings.ToUpper(k)
			if !strings.HasSuffix(upper, "_FILE") && (strings.Contains(upper, "PASSWORD") || strings.Contains(upper, "SECRET") || strings.HasSuffix(upper, "_KEY") || secret[k]) {
				t.Errorf("%s: %s=%q is a credential inline; give it as a file (%s_FILE)", name, k, v, k)
			}
		}
	}

	healthy := func(name string) bool {
		s, ok := f.Services[name]
		return ok && s.Healthcheck != nil && len(s.Healthcheck.Test) > 1 && s.Healthcheck.Test[0] == "CMD"
	}

	// The NATS cluster: three nodes of deploy/nats/nats.conf, authenticated.
	nodes := f.natsNodes()
	if len(nodes) != 3 {
		t.Fatalf("want a 3-node NATS cluster, got %v", nodes)
	}
	for _, n := range []string{"include ./auth.conf", "authorization {", "password: $MAILGATE_PASSWORD", "password: $ROUTE_PASSWORD", "routes: $ROUTES", "http: 127.0.0.1:8222", "name: mailgate"} {
		if !strings.Contains(string(natsConf), n) {
			t.Errorf("deploy/nats/nats.conf lacks %q", n)
		}
	}
	for _, n := range nodes {
		s := f.Services[n]
		cmd := strings.Join(s.Command, " ")
		if !strings.HasPrefix(cmd, "-c /etc/nats/nats.conf ") || !strings.Contains(cmd, "--server_name "+n) {
			t.Errorf("%s: command %q, want -c /etc/nats/nats.conf --server_name %s", n, cmd, n)
		}
		// These flags replace the configuration file's: --cluster and
		// --routes drop the route authorization, the others the users.
		for _, flag := range []string{"--cluster", "--routes", "--user", "--pass", "--auth", "-js", "-sd"} {
			if slices.Contains(s.Command, flag) {
				t.Errorf("%s: %s on the command line overrides nats.conf", n, flag)
			}
		}
		mounts := f.mounts(s)
		if mounts["/etc/nats/nats.conf"] != "./deploy/nats/nats.conf" {
			t.Errorf("%s: /etc/nats/nats.conf is %q, want ./deploy/nats/nats.conf", n, mounts["/etc/nats/nats.conf"])
		}
		if mounts["/etc/nats/auth.conf"] != "./secrets/nats-auth.conf" {
			t.Errorf("%s: /etc/nats/auth.conf (included by nats.conf) is %q, want ./secrets/nats-auth.conf", n, mounts["/etc/nats/auth.conf"])
		}
		if namedVolumes(s)["/data"] == "" {
			t.Errorf("%s: JetStream store /data not on a volume", n)
		}
		if !healthy(n) || !strings.Contains(strings.Join(s.Healthcheck.Test, " "), "http://127.0.0.1:8222/healthz") {
			t.Errorf("%s: want a healthcheck on the monitoring port's /healthz", n)
		}
	}

	// MinIO: root credentials from the same files mailgate reads.
	minio, ok := f.Services["minio"]
	if !ok {
		t.Fatal("no minio service")
	}
	if !healthy("minio") {
		t.Error("minio: no healthcheck")
	}
	for k, secretName := range map[string]string{"MINIO_ROOT_USER_FILE": "minio_root_user", "MINIO_ROOT_PASSWORD_FILE": "minio_root_password"} {
		if v := minio.Environment[k]; v != secretName && v != "/run/secrets/"+secretName {
			t.Errorf("minio: %s = %q, want the secret %s", k, v, secretName)
		}
		if !slices.Contains(minio.Secrets, composeSecret{Source: secretName}) {
			t.Errorf("minio: secret %s not mounted", secretName)
		}
	}

	// The mailgate services.
	roles := map[string]int{}
	replicas := map[string]string{}
	for name, s := range f.Services {
		if s.Build == nil {
			continue
		}
		if len(s.Command) < 3 || s.Command[0] != "serve" || s.Command[1] != "--role" {
			t.Errorf("%s: command %v, want serve --role ROLE", name, s.Command)
			continue
		}
		role := s.Command[2]
		roles[role]++
		if s.User != "65532:65532" {
			t.Errorf("%s: user %q, want 65532:65532 as in the Dockerfile", name, s.User)
		}
		env := s.Environment
		for k := range env {
			if !known[k] {
				t.Errorf("%s: %s is not a mailgate setting", name, k)
			}
		}
		for _, n := range nodes {
			if !strings.Contains(env["MAILGATE_NATS_URL"], "nats://"+n+":4222") {
				t.Errorf("%s: MAILGATE_NATS_URL %q misses %s", name, env["MAILGATE_NATS_URL"], n)
			}
		}
		if env["MAILGATE_NATS_REPLICAS"] != "3" {
			t.Errorf("%s: MAILGATE_NATS_REPLICAS = %q, want 3", name, env["MAILGATE_NATS_REPLICAS"])
		}
		if !strings.HasPrefix(env["MAILGATE_S3_ENDPOINT"], "minio:") {
			t.Errorf("%s: MAILGATE_S3_ENDPOINT = %q, want the minio service", name, env["MAILGATE_S3_ENDPOINT"])
		}
		if env["MAILGATE_NATS_USER"] != "mailgate" {
			t.Errorf("%s: MAILGATE_NATS_USER = %q, want the user mailgate of nats.conf", name, env["MAILGATE_NATS_USER"])
		}
		for _, k := range []string{"MAILGATE_MS_CLIENT_ID", "MAILGATE_S3_BUCKET"} {
			if env[k] == "" {
				t.Errorf("%s: %s not set", name, k)
			}
		}
		// Credentials by file, each a secret mounted into this service.
		mounts := f.mounts(s)
		wantFiles := map[string]string{
			"MAILGATE_NATS_PASSWORD_FILE":    "./secrets/nats-mailgate-password",
			"MAILGATE_S3_ACCESS_KEY_FILE":    "./secrets/mailgate-s3-access-key",
			"MAILGATE_S3_SECRET_KEY_FILE":    "./secrets/mailgate-s3-secret-key",
			"MAILGATE_SECRET_KEY_FILE":       "./secrets/mailgate-secret-key",
			"MAILGATE_MS_CLIENT_SECRET_FILE": "./secrets/ms-client-secret",
		}
		for k, want := range wantFiles {
			if got := mounts[env[k]]; got != want {
				t.Errorf("%s: %s=%q is %q on the host, want %s", name, k, env[k], got, want)
			}
		}
		// Its own volume at the data dir (the spool lives there).
		if env["MAILGATE_DATA_DIR"] != "/data" || namedVolumes(s)["/data"] == "" {
			t.Errorf("%s: data dir %q, volumes %v; want its own volume at /data", name, env["MAILGATE_DATA_DIR"], s.Volumes)
		}
		// Healthy when /readyz of its own listener says so.
		if !healthy(name) || !slices.Equal(s.Healthcheck.Test, []string{"CMD", "/usr/local/bin/mailgate", "healthcheck"}) {
			t.Errorf("%s: healthcheck %v, want mailgate healthcheck", name, s.Healthcheck)
		}
		if _, err := readyzURL(env["MAILGATE_HTTP_ADDR"]); err != nil {
			t.Errorf("%s: the healthcheck cannot find /readyz: %v", name, err)
		}
		// Started once NATS and MinIO are healthy.
		for _, dep := range append(slices.Clone(nodes), "minio") {
			if s.DependsOn[dep].Condition != "service_healthy" {
				t.Errorf("%s: depends_on %s: condition %q, want service_healthy", name, dep, s.DependsOn[dep].Condition)
			}
			if !healthy(dep) {
				t.Errorf("%s depends on %s, which has no healthcheck", name, dep)
			}
		}
		if role == "importer" {
			r := env["MAILGATE_REPLICA"]
			if r == "" {
				t.Errorf("%s: no MAILGATE_REPLICA; a restarted importer would wait out its own leases", name)
			} else if other, dup := replicas[r]; dup {
				t.Errorf("%s and %s share MAILGATE_REPLICA=%s", name, other, r)
			}
			replicas[r] = name
		}
	}
	if roles["portal"] != 1 || roles["importer"] != 2 {
		t.Errorf("roles = %v, want one portal and two importers", roles)
	}
}
