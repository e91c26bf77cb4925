package main

import (
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestComposeOperations (issue 24, item 11) reads docker-compose.yml,
// deploy/ and docs/deployment.md as an operator follows them: /metrics is
// served on its own listener inside the compose network and scraped
// there, the first portal user and API key are made by documented
// commands the binary accepts, mailgate reaches MinIO as its own
// least-privilege user made by a one-shot minio-init, and Caddy serves the
// public URL over TLS.
func TestComposeOperations(t *testing.T) {
	f := readCompose(t)
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile("../../" + name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	docs := read("docs/deployment.md")
	var mailgate []string
	for name, s := range f.Services {
		if s.Build != nil {
			mailgate = append(mailgate, name)
		}
	}
	slices.Sort(mailgate)

	// /metrics: its own listener, not published, scraped on the network.
	prom := read("deploy/prometheus/prometheus.yml")
	for _, name := range mailgate {
		s := f.Services[name]
		_, port, err := net.SplitHostPort(s.Environment["MAILGATE_METRICS_ADDR"])
		_, httpPort, _ := net.SplitHostPort(s.Environment["MAILGATE_HTTP_ADDR"])
		if err != nil || port == httpPort {
			t.Errorf("%s: MAILGATE_METRICS_ADDR=%q, want its own port", name, s.Environment["MAILGATE_METRICS_ADDR"])
			continue
		}
		for _, p := range s.Ports {
			if strings.HasSuffix(p, ":"+port) {
				t.Errorf("%s: ports %q publishes /metrics", name, p)
			}
		}
		if !strings.Contains(prom, `"`+name+":"+port+`"`) {
			t.Errorf("deploy/prometheus/prometheus.yml does not scrape %s:%s", name, port)
		}
		if !strings.Contains(docs, "`"+name+":"+port+"`") {
			t.Errorf("docs/deployment.md does not say where %s's /metrics is (%s:%s)", name, name, port)
		}
	}

	// The first portal user and API key: documented commands the binary
	// takes (run with --help, they must parse).
	bin := mailgateBinary(t)
	cmdRE := regexp.MustCompile("(?m)^docker compose exec -T portal /usr/local/bin/mailgate (.+?)(?: <[^\n]*)?$")
	seen := map[string]bool{}
	for _, m := range cmdRE.FindAllStringSubmatch(docs, -1) {
		args := strings.Fields(m[1])
		seen[args[0]+" "+args[1]] = true
		if _, errOut, code := runBare(t, bin, nil, append(args, "--help")...); code != 0 {
			t.Errorf("docs/deployment.md: mailgate %s: exit %d\n%s", m[1], code, errOut)
		}
	}
	for _, want := range []string{"users add", "apikeys create"} {
		if !seen[want] {
			t.Errorf("docs/deployment.md has no `docker compose exec -T portal /usr/local/bin/mailgate %s …` step", want)
		}
	}

	// MinIO: mailgate holds its own user's keys, made by minio-init.
	initSvc, ok := f.Services["minio-init"]
	if !ok {
		t.Fatal("no minio-init service")
	}
	mounts := f.mounts(initSvc)
	if len(initSvc.Entrypoint) != 2 || mounts[initSvc.Entrypoint[1]] != "./deploy/minio/init.sh" {
		t.Errorf("minio-init: entrypoint %v, mounts %v; want deploy/minio/init.sh run", initSvc.Entrypoint, mounts)
	}
	for _, sec := range []string{"minio_root_user", "minio_root_password", "mailgate_s3_access_key", "mailgate_s3_secret_key"} {
		if !slices.Contains(initSvc.Secrets, composeSecret{Source: sec}) {
			t.Errorf("minio-init: secret %s not mounted", sec)
		}
	}
	if initSvc.DependsOn["minio"].Condition != "service_healthy" {
		t.Errorf("minio-init: depends_on minio %q, want service_healthy", initSvc.DependsOn["minio"].Condition)
	}
	script := read("deploy/minio/init.sh")
	for _, want := range []string{`"$mc" mb --ignore-existing "local/$bucket"`, `"arn:aws:s3:::$bucket"`, `"arn:aws:s3:::$bucket/*"`,
		`"$mc" admin user add local "$user"`, `"$mc" admin policy attach local mailgate --user "$user"`, `cat "$secrets/mailgate_s3_access_key"`} {
		if !strings.Contains(script, want) {
			t.Errorf("deploy/minio/init.sh lacks %s", want)
		}
	}
	if strings.Contains(script, `"s3:*"`) || strings.Contains(script, "arn:aws:s3:::*") {
		t.Error("deploy/minio/init.sh grants more than the bucket")
	}
	for _, name := range mailgate {
		s := f.Services[name]
		if initSvc.Environment["BUCKET"] != s.Environment["MAILGATE_S3_BUCKET"] {
			t.Errorf("%s: bucket %q, minio-init makes %q", name, s.Environment["MAILGATE_S3_BUCKET"], initSvc.Environment["BUCKET"])
		}
		for _, sec := range s.Secrets {
			if strings.HasPrefix(sec.Source, "minio_root") {
				t.Errorf("%s: mounts MinIO's root credentials (%s)", name, sec.Source)
			}
		}
		if s.DependsOn["minio-init"].Condition != "service_completed_successfully" {
			t.Errorf("%s: depends_on minio-init %q, want service_completed_successfully", name, s.DependsOn["minio-init"].Condition)
		}
	}

	// TLS in front: Caddy serves PORTAL_DOMAIN and proxies the portal,
	// whose public URL is that address and which trusts Caddy's network.
	caddy, ok := f.Services["caddy"]
	if !ok {
		t.Fatal("no caddy service")
	}
	if f.mounts(caddy)["/etc/caddy/Caddyfile"] != "./deploy/caddy/Caddyfile" || !slices.Contains(caddy.Ports, "443:443") {
		t.Errorf("caddy: mounts %v, ports %v; want deploy/caddy/Caddyfile and 443", f.mounts(caddy), caddy.Ports)
	}
	caddyfile := read("deploy/caddy/Caddyfile")
	portal := f.Services["portal"]
	_, portalPort, _ := net.SplitHostPort(portal.Environment["MAILGATE_HTTP_ADDR"])
	if !strings.Contains(caddyfile, "{$PORTAL_DOMAIN} {") || !strings.Contains(caddyfile, "reverse_proxy portal:"+portalPort) {
		t.Errorf("deploy/caddy/Caddyfile does not serve {$PORTAL_DOMAIN} by proxying portal:%s:\n%s", portalPort, caddyfile)
	}
	domain := caddy.Environment["PORTAL_DOMAIN"]
	if !strings.HasPrefix(domain, "${PORTAL_DOMAIN") || portal.Environment["MAILGATE_PUBLIC_URL"] != "https://"+domain {
		t.Errorf("portal: MAILGATE_PUBLIC_URL %q, caddy's domain %q; want https:// + the same", portal.Environment["MAILGATE_PUBLIC_URL"], domain)
	}
	if portal.Environment["MAILGATE_TRUSTED_PROXIES"] == "" || !strings.Contains(read("docker-compose.yml"), "subnet: "+portal.Environment["MAILGATE_TRUSTED_PROXIES"]) {
		t.Errorf("portal: MAILGATE_TRUSTED_PROXIES %q is not the compose network's subnet", portal.Environment["MAILGATE_TRUSTED_PROXIES"])
	}
}
