package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.yaml.in/yaml/v3"

	"github.com/mailgate/mailgate/archive/archivetest"
	"github.com/mailgate/mailgate/connector"
)

// promtool finds Prometheus' promtool (Debian: apt-get install prometheus);
// without it the test is skipped, unless CI is set.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not found (CI must check the alert rules); apt-get install prometheus")
		}
		t.Skip("promtool not found; apt-get install prometheus")
	}
	return p
}

// TestAlertRules checks deploy/prometheus/alerts.yml and runs its unit
// tests (alerts_test.yml): the rules fire on a connection in needs_consent
// or failing, a client secret about to expire, an idle refresh token,
// import lag above twice the poll interval, failing webhook deliveries and
// an unready process, and stay quiet for their healthy neighbours.
func TestAlertRules(t *testing.T) {
	bin := promtool(t)
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
	} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = "../../deploy/prometheus"
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

var metricNameRE = regexp.MustCompile(`\bmailgate_[a-z_]+\b`)

// deployQueries returns the PromQL of the alert rules and of the dashboard's
// panels, named by where they come from.
func deployQueries(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	raw, err := os.ReadFile("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			out["alert "+r.Alert] = r.Expr
		}
	}
	raw, err = os.ReadFile("../../deploy/grafana/mailgate.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				RefID string `json:"refId"`
				Expr  string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("grafana dashboard: %v", err)
	}
	if dash.UID == "" || len(dash.Panels) < 6 {
		t.Fatalf("grafana dashboard: uid %q, %d panels", dash.UID, len(dash.Panels))
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				t.Errorf("panel %q target %s has no query", p.Title, tg.RefID)
			}
			out[fmt.Sprintf("panel %q %s", p.Title, tg.RefID)] = tg.Expr
		}
	}
	return out
}

// TestDeployQueriesUseDocumentedMetrics: every metric an alert or a panel
// asks for is in the README's metrics table (which TestDemoEndToEnd holds
// against what the binary serves), so a renamed metric cannot leave an
// alert silently empty.
func TestDeployQueriesUseDocumentedMetrics(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "| `mailgate_") {
			cell := strings.Split(line, "|")[1]
			documented = append(documented, metricNameRE.FindAllString(cell, -1)...)
		}
	}
	if len(documented) < 10 {
		t.Fatalf("found only %d metrics in the README's table", len(documented))
	}
	for where, expr := range deployQueries(t) {
		for _, m := range metricNameRE.FindAllString(expr, -1) {
			if !slices.Contains(documented, m) {
				t.Errorf("%s uses %s, which the README's metrics table does not name", where, m)
			}
		}
	}
}

// TestDashboardQueriesParse hands every dashboard and alert query to
// promtool as a recording rule, so a PromQL syntax error fails here and
// not in front of an operator.
func TestDashboardQueriesParse(t *testing.T) {
	bin := promtool(t)
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for i, expr := range deployQueries(t) {
		_ = i
		rules = append(rules, rule{Record: fmt.Sprintf("mailgate:query_%d", len(rules)), Expr: expr})
	}
	raw, _ := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "queries", "rules": rules}}})
	file := filepath.Join(t.TempDir(), "queries.yml")
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "check", "rules", file).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}

// TestConnectionCollectorTimestamps reads the connection metrics the alert
// rules need from a real store: one state series per connection, the
// token's last use and the secret's expiry as Unix timestamps.
func TestConnectionCollectorTimestamps(t *testing.T) {
	js, _ := archivetest.RunJetStream(t)
	store, err := connector.NewStore(t.Context(), js, connector.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	used := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	expires := time.Date(2026, 12, 24, 0, 0, 0, 0, time.UTC)
	mk := func(c connector.Connection) connector.Connection {
		t.Helper()
		c.TenantID, c.Folder, c.CreatedBy, c.UpdatedBy = "tenant", "inbox", "test", "test"
		c, err := store.Create(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	del := mk(connector.Connection{Customer: "acme", Mailbox: "a@acme.example", Mode: connector.Delegated, State: connector.StateNeedsConsent, TokenRefreshedAt: used})
	app := mk(connector.Connection{Customer: "globex", Mailbox: "b@globex.example", Mode: connector.AppOnly, State: connector.StateActive, ClientID: "cid", SecretExpiresAt: expires})
	gone := mk(connector.Connection{Customer: "acme", Mailbox: "c@acme.example", Mode: connector.AppOnly, State: connector.StateActive, SecretExpiresAt: expires})
	if _, err := store.Delete(t.Context(), gone.ID, "test"); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`
# HELP mailgate_connection_state 1 for the state each connection is in (deleted ones are left out).
# TYPE mailgate_connection_state gauge
mailgate_connection_state{connection=%[1]q,customer="acme",state="needs_consent"} 1
mailgate_connection_state{connection=%[2]q,customer="globex",state="active"} 1
# HELP mailgate_connection_token_last_used_timestamp_seconds When a delegated connection's refresh token was last used (Unix time); Microsoft expires it after 90 days without use.
# TYPE mailgate_connection_token_last_used_timestamp_seconds gauge
mailgate_connection_token_last_used_timestamp_seconds{connection=%[1]q,customer="acme"} %[3]d
# HELP mailgate_connection_secret_expiry_timestamp_seconds When an app-only connection's client secret expires (Unix time).
# TYPE mailgate_connection_secret_expiry_timestamp_seconds gauge
mailgate_connection_secret_expiry_timestamp_seconds{connection=%[2]q,customer="globex"} %[4]d
`, del.ID, app.ID, used.Unix(), expires.Unix())
	if err := testutil.CollectAndCompare(newConnectionCollector(store), strings.NewReader(want),
		"mailgate_connection_state", "mailgate_connection_token_last_used_timestamp_seconds", "mailgate_connection_secret_expiry_timestamp_seconds"); err != nil {
		t.Error(err)
	}
}
