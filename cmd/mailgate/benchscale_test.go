package main

import (
	"strings"
	"testing"
)

// `mailgate bench --only idle-scale` as an operator runs it: the simulator
// runs as `mailgate sim` in a process of its own, and each goal is printed
// beside its measurement.
func TestBenchIdleScaleBinary(t *testing.T) {
	bin := mailgateBinary(t)
	out := runCLI(t, bin, nil, "bench", "--only", "idle-scale", "--no-minio", "--dir", t.TempDir(),
		"--scale-mailboxes", "30", "--scale-poll", "2s", "--scale-measure", "4s")
	t.Log("\n" + out)
	for _, want := range []string{
		"30 mailboxes, poll interval 2s, simulator in its own process",
		"due polls begun within 5 s", "CPU per idle poll", "fsynced KV writes per idle poll", "KV reads per idle poll",
		"KV writes/poll: 0.00 (cursors, imports, connections), 0.00 (leases)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}
