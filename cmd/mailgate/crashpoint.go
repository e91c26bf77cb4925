//go:build crashpoint

package main

import (
	"fmt"
	"os"
)

// crashStep, in a binary built with -tags crashpoint (the crash tests'
// binary, never a release), halts the importer at the step named by
// CRASHPOINT_AT ("stored", "rendition_stored", "published", …): it
// prints "crashpoint <step>" on standard output and waits there for the
// test's SIGKILL.
func crashStep() func(step string) error {
	at := os.Getenv("CRASHPOINT_AT")
	if at == "" {
		return nil
	}
	return func(step string) error {
		if step == at {
			fmt.Fprintln(os.Stdout, "crashpoint", step)
			select {} // until killed
		}
		return nil
	}
}
