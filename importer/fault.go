package importer

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mailgate/mailgate/connector"
)

// Infrastructure components whose faults are the operator's, never an
// item's or a customer's; the keys of Config.Probe's answer.
const (
	ComponentNATS    = componentNATS
	ComponentStorage = componentStorage
	ComponentDisk    = componentDisk
)

const (
	componentNATS    = "nats"    // the ledger, the connection store, event publishing
	componentStorage = "storage" // the document store (S3, directory)
	componentDisk    = "disk"    // the local spool
)

// infraError marks a failure of the operator's infrastructure. It never
// counts toward an item's give-up nor marks a connection failing.
type infraError struct {
	component string
	err       error
}

func (e *infraError) Error() string { return e.component + ": " + e.err.Error() }
func (e *infraError) Unwrap() error { return e.err }

// infra marks err as a fault of component; nil stays nil, and an error
// already marked keeps its component.
func infra(component string, err error) error {
	if err == nil {
		return nil
	}
	var ie *infraError
	if errors.As(err, &ie) {
		return err
	}
	return &infraError{component: component, err: err}
}

// infraComponent returns the component of an infrastructure fault in
// err's chain, or "".
func infraComponent(err error) string {
	var ie *infraError
	if errors.As(err, &ie) {
		return ie.component
	}
	return ""
}

// owner says who must act on a failure.
type owner int

const (
	// ownerItem: one mail or attachment keeps failing. The mail is parked
	// and retried on its own schedule; the rest of the mailbox moves on.
	ownerItem owner = iota
	// ownerMailbox: the connection as a whole (consent, access,
	// throttling, a lost delta state). The pass ends and the connection
	// is handled as a whole.
	ownerMailbox
	// ownerOperator: the operator's infrastructure (disk, storage, NATS).
	// The pass ends; nobody's item or connection is charged.
	ownerOperator
	// ownerNone: the pass was stopped (shutdown, lost lease, pause).
	ownerNone
)

// ownerOf sorts a failure met while working one mail.
func ownerOf(err error) owner {
	switch {
	case stopped(err), errors.Is(err, errHook):
		return ownerNone
	case infraComponent(err) != "":
		return ownerOperator
	}
	switch connector.KindOf(err) {
	case connector.Throttled, connector.NeedsConsent, connector.AccessDenied, connector.SyncReset:
		return ownerMailbox
	}
	return ownerItem
}

// faults keeps the infrastructure faults this importer met and has not
// seen cleared, for readiness checks and one log line per fault.
type faults struct {
	mu    sync.Mutex
	byCmp map[string]fault
}

type fault struct {
	since time.Time
	err   error
}

// set records a fault of component; it reports whether the fault is new.
func (f *faults) set(component string, err error, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byCmp == nil {
		f.byCmp = make(map[string]fault)
	}
	old, ok := f.byCmp[component]
	if ok {
		old.err = err
		f.byCmp[component] = old
		return false
	}
	f.byCmp[component] = fault{since: now, err: err}
	return true
}

// clear forgets the faults of the components given, or all with none; it
// returns the components that were faulty.
func (f *faults) clear(components ...string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var cleared []string
	for c := range f.byCmp {
		if len(components) == 0 || slices.Contains(components, c) {
			cleared = append(cleared, c)
			delete(f.byCmp, c)
		}
	}
	sort.Strings(cleared)
	return cleared
}

// has reports whether component has a fault.
func (f *faults) has(component string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.byCmp[component]
	return ok
}

// err describes the current faults, nil when there are none.
func (f *faults) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.byCmp) == 0 {
		return nil
	}
	var lines []string
	for c, ft := range f.byCmp {
		lines = append(lines, fmt.Sprintf("importer: %s failing since %s: %v", c, ft.since.UTC().Format(time.RFC3339), ft.err))
	}
	sort.Strings(lines)
	return errors.New(strings.Join(lines, "\n"))
}

// Fault reports the infrastructure faults (disk, storage, NATS) that
// passes met and no later success has cleared, for /readyz; nil when
// there are none.
func (im *Importer) Fault() error { return im.faults.err() }

// infraFault records a pass's infrastructure fault: a metric always, a log
// line when the fault is new.
func (im *Importer) infraFault(c connector.Connection, err error) {
	component := infraComponent(err)
	im.metrics.infraErrors.WithLabelValues(component).Inc()
	if im.faults.set(component, err, im.cfg.Now()) {
		im.log.Error("importer: infrastructure fault, imports wait until it is fixed",
			"component", component, "connection_id", c.ID, "err", err)
	}
}

// infraRecovered clears the faults of components that worked again.
func (im *Importer) infraRecovered(components ...string) {
	for _, c := range im.faults.clear(components...) {
		im.log.Info("importer: infrastructure recovered, imports go on", "component", c)
	}
}
