package main

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is mailgate's whole configuration. Every field comes from an
// environment variable MAILGATE_X and a flag --x of the same name in kebab
// case; a flag wins over the environment. Secrets come only from the
// environment or a file named by MAILGATE_X_FILE, never from a flag, which
// would show them in the process list.
type Config struct {
	DataDir   string
	HTTPAddr  string
	PublicURL string
	Role      string
	Replica   string

	NATSURL      string
	NATSListen   string
	NATSCreds    string
	NATSCA       string
	NATSUser     string
	NATSPassword string
	NATSReplicas int

	S3Endpoint  string
	S3AccessKey string
	S3SecretKey string
	S3Bucket    string
	S3Secure    bool

	MSClientID     string
	MSClientSecret string
	MSTenant       string
	LoginURL       string
	GraphURL       string

	OIDCIssuer       string
	OIDCClientID     string
	OIDCClientSecret string
	OIDCCustomer     string
	OIDCGroupsURL    string

	SecretKey      []byte
	ConnectGroup   string
	TrustedProxies []netip.Prefix
	PollInterval   time.Duration
	Workers        int
	RetryFor       time.Duration
	LogLevel       string
	// TimeZone is the zone the portal's German pages show times in.
	TimeZone *time.Location
	// MetricsAddr is where /metrics is served, never on the portal's
	// listener (the metrics name customers and connections); empty: not
	// served.
	MetricsAddr string
	// WebhookAllowPrivate lets webhooks use plain http and private or
	// loopback addresses (development, closed networks).
	WebhookAllowPrivate bool

	// Demo is set by `mailgate demo`: the simulator stands in for Microsoft
	// and missing secrets are generated.
	Demo bool
}

// setting describes one configuration value: its name, default, meaning and
// where it goes.
type setting struct {
	name   string // environment variable without the MAILGATE_ prefix
	def    string
	usage  string
	secret bool // may come from MAILGATE_<name>_FILE; never printed
	set    func(c *Config, v string) error
}

func settings() []setting {
	str := func(p func(c *Config) *string) func(*Config, string) error {
		return func(c *Config, v string) error { *p(c) = v; return nil }
	}
	return []setting{
		{name: "DATA_DIR", def: "./mailgate-data", usage: "embedded NATS store and the default archive directory", set: str(func(c *Config) *string { return &c.DataDir })},
		{name: "HTTP_ADDR", def: "127.0.0.1:8080", usage: "portal and API listen address", set: str(func(c *Config) *string { return &c.HTTPAddr })},
		{name: "PUBLIC_URL", def: "http://localhost:8080", usage: "base of the portal's links and the OAuth redirect URI", set: str(func(c *Config) *string { return &c.PublicURL })},
		{name: "ROLE", def: "all", usage: "what this process runs: portal, importer or all", set: str(func(c *Config) *string { return &c.Role })},
		{name: "REPLICA", def: "", usage: "this importer replica's name for leases; default hostname-pid. A stable name lets a restarted replica take its own leases back at once", set: str(func(c *Config) *string { return &c.Replica })},
		{name: "NATS_URL", def: "", usage: "external NATS (cluster) URLs, comma separated; empty = embedded server", set: str(func(c *Config) *string { return &c.NATSURL })},
		{name: "NATS_LISTEN", def: "127.0.0.1:4222", usage: "where the embedded NATS server listens", set: str(func(c *Config) *string { return &c.NATSListen })},
		{name: "NATS_CREDS", def: "", usage: "NATS credentials file for an external server", set: str(func(c *Config) *string { return &c.NATSCreds })},
		{name: "NATS_CA", def: "", usage: "CA certificate file to verify an external NATS server's TLS", set: str(func(c *Config) *string { return &c.NATSCA })},
		{name: "NATS_USER", def: "", usage: "NATS user for an external server that authenticates by user and password (with MAILGATE_NATS_PASSWORD)", set: str(func(c *Config) *string { return &c.NATSUser })},
		{name: "NATS_PASSWORD", def: "", usage: "password of MAILGATE_NATS_USER", secret: true, set: str(func(c *Config) *string { return &c.NATSPassword })},
		{name: "NATS_REPLICAS", def: "1", usage: "replicas of mailgate's streams and KV buckets in a NATS cluster (1, 3 or 5)", set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			c.NATSReplicas = n
			return err
		}},
		{name: "S3_ENDPOINT", def: "", usage: "S3-compatible endpoint host:port; empty = directory archive", set: str(func(c *Config) *string { return &c.S3Endpoint })},
		{name: "S3_ACCESS_KEY", def: "", usage: "S3 access key", secret: true, set: str(func(c *Config) *string { return &c.S3AccessKey })},
		{name: "S3_SECRET_KEY", def: "", usage: "S3 secret key", secret: true, set: str(func(c *Config) *string { return &c.S3SecretKey })},
		{name: "S3_BUCKET", def: "", usage: "S3 bucket for documents", set: str(func(c *Config) *string { return &c.S3Bucket })},
		{name: "S3_SECURE", def: "true", usage: "use TLS to reach S3", set: func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			c.S3Secure = b
			return err
		}},
		{name: "MS_CLIENT_ID", def: "", usage: "application (client) id of the Microsoft app registration", set: str(func(c *Config) *string { return &c.MSClientID })},
		{name: "MS_CLIENT_SECRET", def: "", usage: "client secret of the Microsoft app registration", secret: true, set: str(func(c *Config) *string { return &c.MSClientSecret })},
		{name: "MS_TENANT", def: "organizations", usage: "tenant for sign-in: organizations, a tenant id or domain", set: str(func(c *Config) *string { return &c.MSTenant })},
		{name: "LOGIN_URL", def: "https://login.microsoftonline.com", usage: "Microsoft identity platform base", set: str(func(c *Config) *string { return &c.LoginURL })},
		{name: "GRAPH_URL", def: "https://graph.microsoft.com/v1.0", usage: "Microsoft Graph base", set: str(func(c *Config) *string { return &c.GraphURL })},
		{name: "SECRET_KEY", def: "", usage: "32-byte key (base64) that seals tokens at rest", secret: true, set: func(c *Config, v string) error {
			if v == "" {
				c.SecretKey = nil
				return nil
			}
			k, err := parseKey(v)
			c.SecretKey = k
			return err
		}},
		{name: "OIDC_ISSUER", def: "", usage: "OpenID Connect issuer for portal single sign-on, e.g. https://login.microsoftonline.com/<tenant>/v2.0; empty = built-in users only", set: str(func(c *Config) *string { return &c.OIDCIssuer })},
		{name: "OIDC_CLIENT_ID", def: "", usage: "client id for portal single sign-on", set: str(func(c *Config) *string { return &c.OIDCClientID })},
		{name: "OIDC_CLIENT_SECRET", def: "", usage: "client secret for portal single sign-on", secret: true, set: str(func(c *Config) *string { return &c.OIDCClientSecret })},
		{name: "OIDC_CUSTOMER", def: "", usage: "customer that single sign-on users belong to", set: str(func(c *Config) *string { return &c.OIDCCustomer })},
		{name: "OIDC_GROUPS_URL", def: "", usage: "where to look up groups when the token has too many to carry (Microsoft: <graph>/me/getMemberGroups)", set: str(func(c *Config) *string { return &c.OIDCGroupsURL })},
		{name: "CONNECT_GROUP", def: "mailbox-connect", usage: "portal group whose members may connect mailboxes", set: str(func(c *Config) *string { return &c.ConnectGroup })},
		{name: "TRUSTED_PROXIES", def: "", usage: "reverse proxies in front of the portal, comma-separated addresses or CIDRs; their X-Forwarded-For names the client for rate limits and logs", set: func(c *Config, v string) error {
			c.TrustedProxies = nil
			for _, f := range strings.Split(v, ",") {
				if f = strings.TrimSpace(f); f == "" {
					continue
				}
				p, err := netip.ParsePrefix(f)
				if err != nil {
					a, aerr := netip.ParseAddr(f)
					if aerr != nil {
						return fmt.Errorf("%q is neither an address nor a CIDR", f)
					}
					p = netip.PrefixFrom(a, a.BitLen())
				}
				c.TrustedProxies = append(c.TrustedProxies, p.Masked())
			}
			return nil
		}},
		{name: "POLL_INTERVAL", def: "1m", usage: "how often an idle connection is polled", set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			c.PollInterval = d
			return err
		}},
		{name: "WORKERS", def: "8", usage: "connections an importer replica works at once", set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			c.Workers = n
			return err
		}},
		{name: "RETRY_FOR", def: "72h", usage: "how long a mail that keeps failing is retried (with backoff, at least 5 tries, at least hourly) before it is given up and announced as failed", set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			c.RetryFor = d
			return err
		}},
		{name: "METRICS_ADDR", def: "", usage: "where /metrics is served (host:port), not on the portal's listener; empty = not served", set: str(func(c *Config) *string { return &c.MetricsAddr })},
		{name: "WEBHOOK_ALLOW_PRIVATE", def: "false", usage: "allow webhook endpoints on plain http and private, loopback or link-local addresses", set: func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			c.WebhookAllowPrivate = b
			return err
		}},
		{name: "TIMEZONE", def: "Europe/Berlin", usage: "time zone of the times on the portal's German pages (an IANA name)", set: func(c *Config, v string) error {
			loc, err := time.LoadLocation(v)
			c.TimeZone = loc
			return err
		}},
		{name: "LOG_LEVEL", def: "info", usage: "debug, info, warn or error", set: str(func(c *Config) *string { return &c.LogLevel })},
	}
}

// flagName turns DATA_DIR into data-dir.
func flagName(name string) string { return strings.ToLower(strings.ReplaceAll(name, "_", "-")) }

// loadConfig reads the environment, then the flags in args. It returns the
// remaining arguments. Problems with single values (an unparsable duration, an
// unreadable secret file, a secret set twice) are reported together, one per
// line, and so is every MAILGATE_* variable in environ that no setting
// reads: a misspelt name would otherwise quietly leave its default.
func loadConfig(fs *flag.FlagSet, args []string, getenv func(string) string, environ []string) (Config, []string, error) {
	var c Config
	if err := refuseSecretFlags(args); err != nil {
		return c, nil, err
	}
	var problems []string
	values := make(map[string]*string)
	for _, s := range settings() {
		v := getenv("MAILGATE_" + s.name)
		if s.secret && v != "" && getenv("MAILGATE_"+s.name+"_FILE") != "" {
			problems = append(problems, fmt.Sprintf("MAILGATE_%s and MAILGATE_%s_FILE are both set: set one of them", s.name, s.name))
		}
		if s.secret && v == "" {
			if file := getenv("MAILGATE_" + s.name + "_FILE"); file != "" {
				b, err := os.ReadFile(file)
				if err != nil {
					problems = append(problems, fmt.Sprintf("MAILGATE_%s_FILE: %v", s.name, err))
				}
				v = strings.TrimSpace(string(b))
			}
		}
		if v == "" {
			v = s.def
		}
		if s.secret {
			// A secret on the command line shows in the process list and
			// the shell history: the flag exists only to say so.
			name := s.name
			fs.Func(flagName(name), s.usage+" (only from env MAILGATE_"+name+" or a file named by MAILGATE_"+name+"_FILE)", func(string) error {
				return fmt.Errorf("not accepted on the command line, where it shows in the process list: set MAILGATE_%s or MAILGATE_%s_FILE", name, name)
			})
			values[s.name] = &v
			continue
		}
		values[s.name] = fs.String(flagName(s.name), v, s.usage+" (env MAILGATE_"+s.name+")")
	}
	// Flags may follow positional arguments (`archive get ID -o FILE`).
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return c, nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	problems = append(problems, unknownVariables(environ)...)
	for _, s := range settings() {
		if err := s.set(&c, *values[s.name]); err != nil {
			v := *values[s.name]
			if s.secret {
				v = "(hidden)"
			}
			problems = append(problems, fmt.Sprintf("MAILGATE_%s=%s: %v", s.name, v, err))
		}
	}
	if len(problems) > 0 {
		return c, rest, errors.New(strings.Join(problems, "\n"))
	}
	return c, rest, nil
}

// knownVariables are the environment variables the settings read: each
// MAILGATE_<name>, and MAILGATE_<name>_FILE for a secret.
func knownVariables() []string {
	var names []string
	for _, s := range settings() {
		names = append(names, "MAILGATE_"+s.name)
		if s.secret {
			names = append(names, "MAILGATE_"+s.name+"_FILE")
		}
	}
	return names
}

// unknownVariables names each MAILGATE_* variable of environ (KEY=VALUE)
// that no setting reads, with the nearest known name.
func unknownVariables(environ []string) []string {
	known := knownVariables()
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "MAILGATE_") || slices.Contains(known, name) {
			continue
		}
		best, dist := "", -1
		for _, k := range known {
			if d := editDistance(name, k); dist < 0 || d < dist {
				best, dist = k, d
			}
		}
		out = append(out, fmt.Sprintf("unknown variable %s; did you mean %s?", name, best))
	}
	slices.Sort(out)
	return out
}

// editDistance is the Levenshtein distance of a and b (ASCII names).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// Warnings are what is valid but likely a mistake, one line each; serve
// prints them and starts.
func (c *Config) Warnings() []string {
	var w []string
	u, err := url.Parse(c.PublicURL)
	_, listenPort, lerr := net.SplitHostPort(c.HTTPAddr)
	if err != nil || lerr != nil || u.Host == "" || listenPort == "0" || u.Port() == "0" {
		return nil
	}
	publicPort := u.Port()
	if publicPort == "" {
		publicPort = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	// Behind a reverse proxy the ports differ by design; a public URL on
	// this very host (loopback) cannot have one in between.
	if publicPort != listenPort && isLoopbackHost(u.Hostname()) {
		w = append(w, fmt.Sprintf("MAILGATE_PUBLIC_URL=%s names port %s, but mailgate listens on %s (MAILGATE_HTTP_ADDR): the portal's links and the OAuth redirect will not reach it; set the same port in both",
			c.PublicURL, publicPort, c.HTTPAddr))
	}
	return w
}

// secretFlags are names that would carry a secret on the command line:
// every secret setting, and the CLI's own (a client secret, a password).
func secretFlags() map[string]string {
	m := map[string]string{
		"client-secret": "use --client-secret-file FILE, or - for standard input",
		"password":      "use --password-file FILE, or - for standard input",
	}
	for _, s := range settings() {
		if s.secret {
			m[flagName(s.name)] = "set MAILGATE_" + s.name + " or MAILGATE_" + s.name + "_FILE"
		}
	}
	return m
}

// refuseSecretFlags refuses a secret given as a flag before the flag
// package sees it, whose error messages would repeat the value.
func refuseSecretFlags(args []string) error {
	secret := secretFlags()
	for _, a := range args {
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if hint, ok := secret[name]; ok {
			return fmt.Errorf("--%s: secrets are not accepted on the command line, where they show in the process list and shell history; %s", name, hint)
		}
	}
	return nil
}

func parseKey(v string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(v); err == nil {
			if len(k) != 32 {
				return nil, fmt.Errorf("must be 32 bytes, base64 encoded, got %d bytes (make one with: openssl rand -base64 32)", len(k))
			}
			return k, nil
		}
	}
	return nil, errors.New("not base64 (make one with: openssl rand -base64 32)")
}

// Validate reports every invalid value or combination, one line each, so an
// operator fixes them all in one go.
func (c *Config) Validate() error {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }

	switch c.Role {
	case "all", "portal", "importer":
	default:
		add("MAILGATE_ROLE=%q: must be portal, importer or all", c.Role)
	}
	if c.DataDir == "" {
		add("MAILGATE_DATA_DIR: must not be empty")
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		add("MAILGATE_HTTP_ADDR=%q: want host:port: %v", c.HTTPAddr, err)
	}
	if c.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			add("MAILGATE_METRICS_ADDR=%q: want host:port: %v", c.MetricsAddr, err)
		} else if c.MetricsAddr == c.HTTPAddr && port != "0" {
			add("MAILGATE_METRICS_ADDR=%q: must differ from MAILGATE_HTTP_ADDR: metrics are not for the public listener", c.MetricsAddr)
		}
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("MAILGATE_PUBLIC_URL=%q: want an absolute http(s) URL such as https://mailgate.example.com", c.PublicURL)
	} else if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		add("MAILGATE_PUBLIC_URL=%q: plain http is only allowed for localhost; Microsoft requires https redirect URIs elsewhere", c.PublicURL)
	}
	if c.NATSURL == "" {
		if _, _, err := net.SplitHostPort(c.NATSListen); err != nil {
			add("MAILGATE_NATS_LISTEN=%q: want host:port: %v", c.NATSListen, err)
		}
		if c.NATSReplicas != 1 {
			add("MAILGATE_NATS_REPLICAS=%d: the embedded server is a single node; replicas need a cluster (set MAILGATE_NATS_URL)", c.NATSReplicas)
		}
		if c.NATSCreds != "" || c.NATSCA != "" {
			add("MAILGATE_NATS_CREDS/MAILGATE_NATS_CA: only apply to an external server (set MAILGATE_NATS_URL)")
		}
	}
	if c.NATSReplicas < 1 || c.NATSReplicas > 5 {
		add("MAILGATE_NATS_REPLICAS=%d: must be 1 to 5", c.NATSReplicas)
	}
	if (c.NATSUser == "") != (c.NATSPassword == "") {
		add("MAILGATE_NATS_USER and MAILGATE_NATS_PASSWORD (or MAILGATE_NATS_PASSWORD_FILE): set both or neither")
	}
	if c.NATSUser != "" && c.NATSCreds != "" {
		add("MAILGATE_NATS_USER and MAILGATE_NATS_CREDS: set one way to authenticate to NATS, not both")
	}
	if c.NATSURL == "" && (c.NATSUser != "" || c.NATSPassword != "") {
		add("MAILGATE_NATS_USER/MAILGATE_NATS_PASSWORD: only apply to an external server (set MAILGATE_NATS_URL)")
	}
	s3 := map[string]string{"MAILGATE_S3_ENDPOINT": c.S3Endpoint, "MAILGATE_S3_ACCESS_KEY": c.S3AccessKey, "MAILGATE_S3_SECRET_KEY": c.S3SecretKey, "MAILGATE_S3_BUCKET": c.S3Bucket}
	var s3set, s3missing []string
	for _, k := range []string{"MAILGATE_S3_ENDPOINT", "MAILGATE_S3_ACCESS_KEY", "MAILGATE_S3_SECRET_KEY", "MAILGATE_S3_BUCKET"} {
		if s3[k] != "" {
			s3set = append(s3set, k)
		} else {
			s3missing = append(s3missing, k)
		}
	}
	if len(s3set) > 0 && len(s3missing) > 0 {
		add("S3 storage is partly configured: %s set but %s missing", strings.Join(s3set, ", "), strings.Join(s3missing, ", "))
	}
	if c.S3Endpoint != "" && strings.Contains(c.S3Endpoint, "://") {
		add("MAILGATE_S3_ENDPOINT=%q: want host:port without scheme (use MAILGATE_S3_SECURE for TLS)", c.S3Endpoint)
	}
	for name, v := range map[string]string{"MAILGATE_LOGIN_URL": c.LoginURL, "MAILGATE_GRAPH_URL": c.GraphURL} {
		if u, err := url.Parse(v); err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname()))) {
			add("%s=%q: want an https URL (plain http only for loopback)", name, v)
		}
	}
	if c.Workers < 1 || c.Workers > 1000 {
		add("MAILGATE_WORKERS=%d: want 1 to 1000", c.Workers)
	}
	if c.RetryFor < time.Second {
		add("MAILGATE_RETRY_FOR=%s: want at least 1s", c.RetryFor)
	}
	if c.PollInterval < 5*time.Second {
		add("MAILGATE_POLL_INTERVAL=%s: must be at least 5s (Graph limits requests per mailbox)", c.PollInterval)
	}
	if c.OIDCIssuer != "" {
		if u, err := url.Parse(c.OIDCIssuer); err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname()))) {
			add("MAILGATE_OIDC_ISSUER=%q: want an https URL (plain http only for loopback)", c.OIDCIssuer)
		}
		for name, v := range map[string]string{"MAILGATE_OIDC_CLIENT_ID": c.OIDCClientID, "MAILGATE_OIDC_CLIENT_SECRET": c.OIDCClientSecret, "MAILGATE_OIDC_CUSTOMER": c.OIDCCustomer} {
			if v == "" {
				add("%s: required with MAILGATE_OIDC_ISSUER", name)
			}
		}
	} else if c.OIDCClientID != "" || c.OIDCCustomer != "" {
		add("MAILGATE_OIDC_CLIENT_ID/MAILGATE_OIDC_CUSTOMER: set without MAILGATE_OIDC_ISSUER")
	}
	if c.ConnectGroup == "" {
		add("MAILGATE_CONNECT_GROUP: must not be empty")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("MAILGATE_LOG_LEVEL=%q: must be debug, info, warn or error", c.LogLevel)
	}
	if !c.Demo {
		if c.SecretKey == nil {
			add("MAILGATE_SECRET_KEY or MAILGATE_SECRET_KEY_FILE: required; a 32-byte key, base64 (make one with: openssl rand -base64 32)")
		}
		if c.MSClientID == "" {
			add("MAILGATE_MS_CLIENT_ID: required; the application (client) id of your Microsoft app registration (see README)")
		}
		if c.MSClientSecret == "" {
			add("MAILGATE_MS_CLIENT_SECRET or MAILGATE_MS_CLIENT_SECRET_FILE: required; a client secret of your Microsoft app registration")
		}
	}
	if len(p) > 0 {
		return errors.New(strings.Join(p, "\n"))
	}
	return nil
}

// natsURL is where CLI commands find state: the external cluster, or the
// embedded server of a `mailgate serve` on this host.
func (c *Config) natsURL() string {
	if c.NATSURL != "" {
		return c.NATSURL
	}
	return "nats://" + c.NATSListen
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
