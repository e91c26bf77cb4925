package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

func printHeader(w io.Writer, rep *Report) {
	m := rep.Machine
	fmt.Fprintf(w, "mailgate bench — %s, %d cores, %s %s/%s\n", m.CPU, m.Cores, m.GoVersion, m.OS, m.Arch)
	store := "directory archive (MinIO not found)"
	if rep.Store == "minio" {
		store = "MinIO " + m.MinIO + " (child process, loopback)"
	}
	sim := "in-process simulator"
	if rep.Options.StartSim != nil && slices.Equal(rep.Options.Only, []string{ScenarioIdleScale}) {
		sim = "simulator in its own process (mailgate sim)"
	}
	fmt.Fprintf(w, "store: %s; NATS: embedded, file storage, SyncAlways; Graph: %s; scale %g\n\n",
		store, sim, rep.Options.Scale)
	for _, warn := range rep.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", warn)
	}
	if len(rep.Warnings) > 0 {
		fmt.Fprintln(w)
	}
}

func printReport(w io.Writer, rep *Report) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\twhat\tdocs\tsize MB\tseconds\tdocs/s\tMB/s\tGraph req/doc\t429\tpeak RSS MiB\tRSS +MiB\tCPU s\t")
	for _, r := range rep.Rows {
		req, thr := "-", "-"
		if r.What == whatMailgate || r.What == whatMailgate4 {
			req, thr = fmt.Sprintf("%.3f", r.RequestsPerDoc()), fmt.Sprint(r.Throttled)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%.2f\t%.1f\t%.1f\t%s\t%s\t%.0f\t%.1f\t%.2f\t\n",
			r.Scenario, r.What, r.Docs, float64(r.Bytes)/1e6, r.Elapsed.Seconds(), r.DocsPerSec(), r.MBPerSec(),
			req, thr, float64(r.PeakRSS)/(1<<20), float64(r.RSSIncrease)/(1<<20), r.CPU.Seconds())
	}
	tw.Flush()
	for _, r := range rep.Rows {
		if r.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", r.Scenario, r.Note)
		}
	}
	if len(rep.Ratios) > 0 {
		fmt.Fprintln(w, "\nmailgate / raw:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, r := range rep.Ratios {
			fmt.Fprintf(tw, "  %s\t%s\t%.2f\n", r.Scenario, r.What, r.Value)
		}
		tw.Flush()
	}
	if len(rep.Goals) > 0 {
		fmt.Fprintln(w, "\ngoals:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  goal\tmeasured\ttarget\tmet\t")
		for _, g := range rep.Goals {
			met := "yes"
			if !g.Met {
				met = "NO"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", g.Name, g.Measured, g.Target, met, g.Note)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\n(docs: documents, or polls for idle; \"docs\" of raw JetStream publish are events. Graph req/doc is per poll for idle.)\n")
	fmt.Fprintf(w, "total %s\n", strings.TrimSpace(rep.Elapsed.Round(100_000_000).String()))
}
