package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// No container engine runs here, so the compose file is kept honest by
// checking its structure against the configuration mailgate really reads.
func TestComposeFile(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Build       any               `yaml:"build"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	known := map[string]bool{}
	for _, s := range settings() {
		known["MAILGATE_"+s.name] = true
		if s.secret {
			known["MAILGATE_"+s.name+"_FILE"] = true
		}
	}

	var natsNodes []string
	for name, s := range f.Services {
		if strings.HasPrefix(s.Image, "nats:") {
			natsNodes = append(natsNodes, name)
			if !slices.Contains(s.Command, "-js") || !slices.Contains(s.Command, "--cluster_name") {
				t.Errorf("%s: not a JetStream cluster node: %v", name, s.Command)
			}
			if len(s.Volumes) == 0 {
				t.Errorf("%s: JetStream store not on a volume", name)
			}
		}
	}
	slices.Sort(natsNodes)
	if len(natsNodes) != 3 {
		t.Fatalf("want a 3-node NATS cluster, got %v", natsNodes)
	}
	for _, n := range natsNodes {
		cmd := strings.Join(f.Services[n].Command, " ")
		for _, other := range natsNodes {
			if other != n && !strings.Contains(cmd, "nats://"+other+":6222") {
				t.Errorf("%s does not route to %s", n, other)
			}
		}
	}
	if _, ok := f.Services["minio"]; !ok {
		t.Error("no minio service")
	}

	roles := map[string]int{}
	for name, s := range f.Services {
		if s.Build == nil {
			continue
		}
		if len(s.Command) < 3 || s.Command[0] != "serve" || s.Command[1] != "--role" {
			t.Errorf("%s: command %v, want serve --role ROLE", name, s.Command)
			continue
		}
		roles[s.Command[2]]++
		for k := range s.Environment {
			if !known[k] {
				t.Errorf("%s: %s is not a mailgate setting", name, k)
			}
		}
		env := s.Environment
		for _, n := range natsNodes {
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
		for _, k := range []string{"MAILGATE_SECRET_KEY", "MAILGATE_MS_CLIENT_ID", "MAILGATE_MS_CLIENT_SECRET", "MAILGATE_S3_BUCKET"} {
			if env[k] == "" {
				t.Errorf("%s: %s not set", name, k)
			}
		}
	}
	if roles["portal"] != 1 || roles["importer"] != 2 {
		t.Errorf("roles = %v, want one portal and two importers", roles)
	}

	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(df), "go build") || !strings.Contains(string(df), "./cmd/mailgate") {
		t.Error("Dockerfile does not build ./cmd/mailgate")
	}
}
