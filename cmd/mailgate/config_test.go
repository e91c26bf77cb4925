package main

import (
	"flag"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

const testKey = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" // 32 bytes

func load(t *testing.T, env map[string]string, args ...string) (Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg, _, err := loadConfig(fs, args, func(k string) string { return env[k] }, nil)
	return cfg, err
}

func validEnv() map[string]string {
	return map[string]string{
		"MAILGATE_SECRET_KEY":       testKey,
		"MAILGATE_MS_CLIENT_ID":     "11111111-2222-3333-4444-555555555555",
		"MAILGATE_MS_CLIENT_SECRET": "s3cr3t",
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := load(t, validEnv())
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	if cfg.DataDir != "./mailgate-data" || cfg.HTTPAddr != "127.0.0.1:8080" || cfg.PollInterval != time.Minute ||
		cfg.ConnectGroup != "mailbox-connect" || cfg.MSTenant != "organizations" || cfg.natsURL() != "nats://127.0.0.1:4222" || cfg.Role != "all" {
		t.Errorf("unexpected defaults: %+v", cfg)
	}
	if len(cfg.SecretKey) != 32 {
		t.Errorf("secret key: %d bytes", len(cfg.SecretKey))
	}
}

func TestConfigFlagBeatsEnv(t *testing.T) {
	env := validEnv()
	env["MAILGATE_POLL_INTERVAL"] = "2m"
	cfg, err := load(t, env, "--poll-interval", "30s", "--role", "importer")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PollInterval != 30*time.Second || cfg.Role != "importer" {
		t.Errorf("flags not applied: %v %s", cfg.PollInterval, cfg.Role)
	}
}

func TestConfigSecretFromFile(t *testing.T) {
	env := validEnv()
	delete(env, "MAILGATE_MS_CLIENT_SECRET")
	file := t.TempDir() + "/secret"
	if err := writeFile(file, "from-file\n"); err != nil {
		t.Fatal(err)
	}
	env["MAILGATE_MS_CLIENT_SECRET_FILE"] = file
	cfg, err := load(t, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MSClientSecret != "from-file" {
		t.Errorf("secret from file = %q", cfg.MSClientSecret)
	}
}

// TestConfigCredentialsFromFiles reads the settings docker-compose.yml
// passes as files: the NATS password and both S3 keys, next to a NATS user.
func TestConfigCredentialsFromFiles(t *testing.T) {
	dir := t.TempDir()
	env := validEnv()
	env["MAILGATE_NATS_URL"] = "nats://nats-1:4222"
	env["MAILGATE_NATS_USER"] = "mailgate"
	env["MAILGATE_S3_ENDPOINT"] = "minio:9000"
	env["MAILGATE_S3_BUCKET"] = "invoices"
	for name, content := range map[string]string{"NATS_PASSWORD": "nats-pw\n", "S3_ACCESS_KEY": "minio-user\n", "S3_SECRET_KEY": "minio-pw"} {
		file := dir + "/" + name
		if err := writeFile(file, content); err != nil {
			t.Fatal(err)
		}
		env["MAILGATE_"+name+"_FILE"] = file
	}
	cfg, err := load(t, env)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	if cfg.NATSUser != "mailgate" || cfg.NATSPassword != "nats-pw" || cfg.S3AccessKey != "minio-user" || cfg.S3SecretKey != "minio-pw" {
		t.Errorf("credentials from files: user %q password %q access key %q secret key %q", cfg.NATSUser, cfg.NATSPassword, cfg.S3AccessKey, cfg.S3SecretKey)
	}

	env["MAILGATE_NATS_PASSWORD_FILE"] = dir + "/missing"
	if _, err := load(t, env); err == nil || !strings.Contains(err.Error(), "MAILGATE_NATS_PASSWORD_FILE") {
		t.Errorf("unreadable password file: err = %v", err)
	}
}

func TestConfigInvalid(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string // each must appear as its own line
	}{
		{"no secret key", map[string]string{"MAILGATE_SECRET_KEY": ""}, []string{"MAILGATE_SECRET_KEY or MAILGATE_SECRET_KEY_FILE: required"}},
		{"no app registration", map[string]string{"MAILGATE_MS_CLIENT_ID": "", "MAILGATE_MS_CLIENT_SECRET": ""},
			[]string{"MAILGATE_MS_CLIENT_ID: required", "MAILGATE_MS_CLIENT_SECRET or MAILGATE_MS_CLIENT_SECRET_FILE: required"}},
		{"partial s3", map[string]string{"MAILGATE_S3_ENDPOINT": "minio:9000", "MAILGATE_S3_BUCKET": "b"},
			[]string{"S3 storage is partly configured: MAILGATE_S3_ENDPOINT, MAILGATE_S3_BUCKET set but MAILGATE_S3_ACCESS_KEY, MAILGATE_S3_SECRET_KEY missing"}},
		{"s3 with scheme", map[string]string{"MAILGATE_S3_ENDPOINT": "https://s3", "MAILGATE_S3_ACCESS_KEY": "a", "MAILGATE_S3_SECRET_KEY": "b", "MAILGATE_S3_BUCKET": "c"},
			[]string{`MAILGATE_S3_ENDPOINT="https://s3": want host:port without scheme`}},
		{"bad role", map[string]string{"MAILGATE_ROLE": "worker"}, []string{`MAILGATE_ROLE="worker": must be portal, importer or all`}},
		{"http public url", map[string]string{"MAILGATE_PUBLIC_URL": "http://mailgate.example.com"}, []string{"plain http is only allowed for localhost"}},
		{"relative public url", map[string]string{"MAILGATE_PUBLIC_URL": "mailgate"}, []string{`MAILGATE_PUBLIC_URL="mailgate": want an absolute http(s) URL`}},
		{"fast poll", map[string]string{"MAILGATE_POLL_INTERVAL": "1s"}, []string{"MAILGATE_POLL_INTERVAL=1s: must be at least 5s"}},
		{"plain http graph", map[string]string{"MAILGATE_GRAPH_URL": "http://graph.example.com/v1.0"}, []string{"MAILGATE_GRAPH_URL"}},
		{"replicas on embedded", map[string]string{"MAILGATE_NATS_REPLICAS": "3"}, []string{"MAILGATE_NATS_REPLICAS=3: the embedded server is a single node"}},
		{"creds without url", map[string]string{"MAILGATE_NATS_CREDS": "/x.creds"}, []string{"only apply to an external server"}},
		{"nats user without url", map[string]string{"MAILGATE_NATS_USER": "mailgate", "MAILGATE_NATS_PASSWORD": "pw"}, []string{"MAILGATE_NATS_USER/MAILGATE_NATS_PASSWORD: only apply to an external server"}},
		{"nats user without password", map[string]string{"MAILGATE_NATS_URL": "nats://n1:4222", "MAILGATE_NATS_USER": "mailgate"}, []string{"set both or neither"}},
		{"nats password without user", map[string]string{"MAILGATE_NATS_URL": "nats://n1:4222", "MAILGATE_NATS_PASSWORD": "pw"}, []string{"set both or neither"}},
		{"nats user and creds", map[string]string{"MAILGATE_NATS_URL": "nats://n1:4222", "MAILGATE_NATS_USER": "mailgate", "MAILGATE_NATS_PASSWORD": "pw", "MAILGATE_NATS_CREDS": "/x.creds"},
			[]string{"MAILGATE_NATS_USER and MAILGATE_NATS_CREDS: set one way"}},
		{"sso half configured", map[string]string{"MAILGATE_OIDC_ISSUER": "https://login.example.com/t/v2.0", "MAILGATE_OIDC_CLIENT_ID": "x"},
			[]string{"MAILGATE_OIDC_CLIENT_SECRET: required with MAILGATE_OIDC_ISSUER", "MAILGATE_OIDC_CUSTOMER: required with MAILGATE_OIDC_ISSUER"}},
		{"two problems at once", map[string]string{"MAILGATE_ROLE": "x", "MAILGATE_LOG_LEVEL": "loud"},
			[]string{`MAILGATE_ROLE="x"`, `MAILGATE_LOG_LEVEL="loud"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := validEnv()
			for k, v := range tt.env {
				env[k] = v
			}
			cfg, err := load(t, env)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			err = cfg.Validate()
			if err == nil {
				t.Fatal("invalid config accepted")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Errorf("got %d problem lines, want %d:\n%s", len(lines), len(tt.want), err)
			}
			for _, w := range tt.want {
				found := false
				for _, l := range lines {
					found = found || strings.Contains(l, w)
				}
				if !found {
					t.Errorf("no line contains %q:\n%s", w, err)
				}
			}
		})
	}
}

func TestConfigUnparsable(t *testing.T) {
	env := validEnv()
	env["MAILGATE_POLL_INTERVAL"] = "often"
	env["MAILGATE_SECRET_KEY"] = "c2hvcnQ=" // 5 bytes
	_, err := load(t, env)
	if err == nil {
		t.Fatal("unparsable values accepted")
	}
	msg := err.Error()
	if !strings.Contains(msg, "MAILGATE_POLL_INTERVAL=often") || !strings.Contains(msg, "MAILGATE_SECRET_KEY=(hidden): must be 32 bytes") {
		t.Errorf("unclear error:\n%s", msg)
	}
	if strings.Contains(msg, "c2hvcnQ") {
		t.Error("the secret key appears in the error")
	}
}

func TestConfigDemoNeedsNoSecrets(t *testing.T) {
	cfg, err := load(t, map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Demo = true
	if err := cfg.Validate(); err != nil {
		t.Fatalf("demo config refused: %v", err)
	}
}

func TestRedactURL(t *testing.T) {
	got := redactURL("nats://user:pw@n1:4222,nats://n2:4222")
	if strings.Contains(got, "pw") || !strings.Contains(got, "n2:4222") {
		t.Errorf("redactURL = %q", got)
	}
}

func writeFile(name, content string) error { return os.WriteFile(name, []byte(content), 0o600) }

func TestConfigTrustedProxies(t *testing.T) {
	env := validEnv()
	env["MAILGATE_TRUSTED_PROXIES"] = "10.0.0.0/8, 192.0.2.7,fd00::/8"
	cfg, err := load(t, env)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("fd00::/8")}
	if !slices.Equal(cfg.TrustedProxies, want) {
		t.Errorf("trusted proxies = %v, want %v", cfg.TrustedProxies, want)
	}
	env["MAILGATE_TRUSTED_PROXIES"] = "10.0.0.0/8,proxy.example.com"
	if _, err := load(t, env); err == nil || !strings.Contains(err.Error(), "MAILGATE_TRUSTED_PROXIES") ||
		!strings.Contains(err.Error(), `"proxy.example.com" is neither an address nor a CIDR`) {
		t.Errorf("a host name as trusted proxy: err = %v", err)
	}
}

// TestSecretsNotFromFlags gives every secret on the command line, as an
// operator might by habit, and checks it is refused without being echoed;
// the same secrets from the environment and files still work.
func TestSecretsNotFromFlags(t *testing.T) {
	const value = "hunter2-do-not-echo"
	var secrets []string
	for _, s := range settings() {
		if s.secret {
			secrets = append(secrets, s.name)
		}
	}
	if len(secrets) < 4 {
		t.Fatalf("only %d secret settings: %v", len(secrets), secrets)
	}
	for _, name := range secrets {
		for _, args := range [][]string{{"--" + flagName(name), value}, {"-" + flagName(name) + "=" + value}} {
			_, err := load(t, validEnv(), args...)
			if err == nil {
				t.Errorf("%v accepted", args)
				continue
			}
			if strings.Contains(err.Error(), value) || !strings.Contains(err.Error(), "MAILGATE_"+name+"_FILE") {
				t.Errorf("%v: %v", args, err)
			}
		}
	}
	// The CLI's own secrets: through the whole command, as typed.
	for _, args := range [][]string{
		{"connections", "add-app", "--customer", "firma", "--tenant", "t", "--client-id", "c", "--mailbox", "m@x.example", "--client-secret", value},
		{"users", "add", "eve", "--customer", "firma", "--password=" + value},
		{"serve", "--ms-client-secret", value},
		{"demo", "--secret-key", value},
	} {
		var stdout, stderr strings.Builder
		code := run(t.Context(), args, func(string) string { return "" }, strings.NewReader(""), &stdout, &stderr)
		if code == 0 || strings.Contains(stderr.String()+stdout.String(), value) || !strings.Contains(stderr.String(), "not accepted on the command line") {
			t.Errorf("mailgate %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
		}
	}
	// Environment and files still carry them.
	env := validEnv()
	file := t.TempDir() + "/s3"
	if err := writeFile(file, "s3-secret\n"); err != nil {
		t.Fatal(err)
	}
	env["MAILGATE_S3_SECRET_KEY_FILE"] = file
	env["MAILGATE_OIDC_CLIENT_SECRET"] = "oidc-secret"
	cfg, err := load(t, env)
	if err != nil || cfg.S3SecretKey != "s3-secret" || cfg.OIDCClientSecret != "oidc-secret" || cfg.MSClientSecret != "s3cr3t" {
		t.Errorf("secrets from env and files: %v %+v", err, cfg)
	}
}

// TestConfigTimeZone: the portal's German pages show times in
// MAILGATE_TIMEZONE, Europe/Berlin unless set; a zone that does not exist
// is refused with the variable's name.
func TestConfigTimeZone(t *testing.T) {
	cfg, err := load(t, validEnv())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TimeZone == nil || cfg.TimeZone.String() != "Europe/Berlin" {
		t.Errorf("default zone %v, want Europe/Berlin", cfg.TimeZone)
	}
	env := validEnv()
	env["MAILGATE_TIMEZONE"] = "America/New_York"
	if cfg, err = load(t, env); err != nil || cfg.TimeZone.String() != "America/New_York" {
		t.Errorf("MAILGATE_TIMEZONE=America/New_York: %v %v", cfg.TimeZone, err)
	}
	env["MAILGATE_TIMEZONE"] = "Mars/Olympus_Mons"
	if _, err := load(t, env); err == nil || !strings.Contains(err.Error(), "MAILGATE_TIMEZONE") {
		t.Errorf("an unknown zone: %v", err)
	}
}
