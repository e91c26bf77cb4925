package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/mailgate/mailgate/cmd/mailgate/samples"
	"github.com/mailgate/mailgate/connector/graph"
	"github.com/mailgate/mailgate/connector/graphtest"
	"github.com/mailgate/mailgate/importer"
	"github.com/mailgate/mailgate/importer/rendition"
	"github.com/mailgate/mailgate/importer/rules"
)

// ScenarioEInvoices is a mailbox where one mail in five carries an
// XRechnung (the others a 100 KB PDF), imported three times in fresh
// worlds: without the official rules and the rendition, with the rules
// only, and with both as `mailgate serve` wires them. It runs only when
// named in Options.Only.
const ScenarioEInvoices = "einvoices"

const (
	einvoiceMails = 1000
	einvoiceEvery = 5 // one mail in einvoiceEvery is an e-invoice
	// GoalJudgedShare is the share of docs/s kept with validation and
	// rendition on, at least (issue 20).
	GoalJudgedShare = 0.90
)

// The Row.What of the runs with the rules, and with the rules and the
// rendition.
const (
	whatRules  = "mailgate, rules"
	whatJudged = "mailgate, rules + rendition"
)

func (b *bencher) einvoiceScenario(ctx context.Context) ([]Row, error) {
	v, err := rules.Default()
	if err != nil {
		return nil, err
	}
	n := b.opts.count(einvoiceMails)
	var rows []Row
	for _, run := range []struct {
		what, name     string
		rules, renders bool
	}{
		{whatMailgate, "-plain", false, false},
		{whatRules, "-rules", true, false},
		{whatJudged, "-judged", true, true},
	} {
		var icfg importer.Config
		if run.rules {
			icfg.Validator = v
		}
		if run.renders {
			icfg.Render = rendition.PDF
		}
		row, err := b.einvoiceRun(ctx, ScenarioEInvoices+run.name, n, icfg)
		if err != nil {
			return nil, err
		}
		row.What = run.what
		rows = append(rows, row)
	}
	return rows, nil
}

// einvoiceRun imports n mails, every einvoiceEvery-th with an XRechnung,
// in a fresh world under dir name, and measures the pass.
func (b *bencher) einvoiceRun(ctx context.Context, name string, n int, icfg importer.Config) (Row, error) {
	a, err := newArena(n * (docsSize + pdfOverhead))
	if err != nil {
		return Row{}, err
	}
	defer a.free()
	e, err := b.newEnv(ctx, name, graph.Config{Requests: unlimited}, icfg)
	if err != nil {
		return Row{}, err
	}
	defer e.close() // before a.free: the simulator serves the arena
	e.sim.SetThrottle(graphtest.Throttle{Requests: unlimited})
	received := time.Now().UTC().Add(-time.Duration(n) * time.Second)
	docs := make([][]byte, n)
	for i := range n {
		at := received.Add(time.Duration(i) * time.Second)
		m := invoiceMail(i, at, nil)
		if i%einvoiceEvery == einvoiceEvery-1 {
			number := fmt.Sprintf("RE-2026-%05d", i)
			docs[i] = samples.XRechnung("Lieferant GmbH", number, float64(100+i), at)
			m.Attachments[0].Name, m.Attachments[0].ContentType = number+".xml", "application/xml"
		} else {
			docs[i] = makePDF(a, docsSize, uint64(i), fmt.Sprintf("RE-2026-%d", i))
		}
		m.Attachments[0].Content = docs[i]
		if _, err := e.sim.Deliver(graphtest.DefaultMailbox, m); err != nil {
			return Row{}, fmt.Errorf("deliver: %w", err)
		}
	}
	c, err := b.connect(ctx, e, graphtest.DefaultMailbox)
	if err != nil {
		return Row{}, err
	}
	return measureSync(ctx, e, c.ID, ScenarioEInvoices, docs)
}

// einvoiceGoal compares a run with the rules (and the rendition) to the
// plain one.
func einvoiceGoal(plain, judged Row, with string) Goal {
	share := 0.0
	if plain.DocsPerSec() > 0 {
		share = judged.DocsPerSec() / plain.DocsPerSec()
	}
	return Goal{
		Name:     fmt.Sprintf("docs/s kept with %s, one mail in %d an XRechnung", with, einvoiceEvery),
		Measured: fmt.Sprintf("%.2f (%.1f of %.1f docs/s)", share, judged.DocsPerSec(), plain.DocsPerSec()),
		Target:   fmt.Sprintf("≥ %.2f", GoalJudgedShare),
		Met:      share >= GoalJudgedShare,
	}
}
