package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The operator's friction (issue 24): each test runs the built binary as an
// operator starts it, with environment variables only, and asserts the
// line a person reads.

// runBare runs the binary in an empty temporary directory with exactly env
// (no inherited MAILGATE_* variables, no server anywhere) and returns its
// output and exit code.
func runBare(t *testing.T, bin string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + cmd.Dir}, env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("mailgate %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), code
}

// Item 10: every command's help works with no server and no environment,
// and a command group's help lists its subcommands.
func TestHelpOffline(t *testing.T) {
	bin := mailgateBinary(t)
	for name, subs := range commandGroups() {
		for _, args := range [][]string{{name, "--help"}, {name, "-h"}, {name, "help"}, {"help", name}} {
			out, errOut, code := runBare(t, bin, nil, args...)
			if code != 0 {
				t.Errorf("mailgate %s: exit %d, want 0\n%s", strings.Join(args, " "), code, errOut)
				continue
			}
			if !strings.HasPrefix(out, "Usage: mailgate "+name+" SUBCOMMAND [flags]\n") {
				t.Errorf("mailgate %s: first line %q", strings.Join(args, " "), strings.SplitN(out, "\n", 2)[0])
			}
			for _, s := range subs {
				if line := "  " + strings.TrimSpace(s.name+" "+s.args) + "\n"; !strings.Contains(out, line) {
					t.Errorf("mailgate %s does not list %q", strings.Join(args, " "), line)
				}
			}
		}
		for _, s := range subs {
			_, errOut, code := runBare(t, bin, nil, name, s.name, "--help")
			if code != 0 || !strings.Contains(errOut, "Usage of mailgate "+name+" "+s.name+":") {
				t.Errorf("mailgate %s %s --help: exit %d\n%s", name, s.name, code, errOut)
			}
		}
		// An unknown subcommand is refused without a server, and says so.
		_, errOut, code := runBare(t, bin, nil, name, "frob")
		if want := "mailgate " + name + `: unknown subcommand "frob"`; code != 2 || !strings.HasPrefix(errOut, want+"\n") {
			t.Errorf("mailgate %s frob: exit %d, want 2 and %q first:\n%s", name, code, want, errOut)
		}
	}
	for _, name := range []string{"serve", "demo", "sim", "bench", "healthcheck"} {
		_, errOut, code := runBare(t, bin, nil, name, "--help")
		if code != 0 || !strings.Contains(errOut, "Usage") {
			t.Errorf("mailgate %s --help: exit %d\n%s", name, code, errOut)
		}
	}
}

// Item 12: the give-up horizon defaults to three days.
func TestRetryForDefault(t *testing.T) {
	bin := mailgateBinary(t)
	_, errOut, code := runBare(t, bin, nil, "serve", "--help")
	if want := `(env MAILGATE_RETRY_FOR) (default "72h")`; code != 0 || !strings.Contains(errOut, want) {
		t.Errorf("serve --help: exit %d, want the line ending %q:\n%s", code, want, errOut)
	}
}
