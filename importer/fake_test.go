package importer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

// fakeMailbox is a behavioural in-memory mailbox with Graph's delta
// semantics: rounds over a folder paged by next links, delta links that
// return what changed since (new, changed and moved-in mail, "@removed"
// for moved-out mail), lost sync state (SyncReset) and item ids that change
// on a move unless immutable ids are on.
type fakeMailbox struct {
	mu        sync.Mutex
	seq       int64
	nextID    int
	mails     map[string]*fakeMail // by current id
	removals  map[string][]removal // folder -> moved out or deleted
	folders   map[string]string    // display name -> id
	rounds    map[int][]connector.Message
	nextRound int
	pageSize  int
	immutable bool
	// resetBefore invalidates every link issued before this change number.
	resetBefore int64
	// fault, when set, may fail an operation: op is "delta",
	// "attachments", "open", "message", "get", "move", "markread", "category",
	// "folder"; arg is the link, message id or attachment name.
	fault func(op, arg string) error
	calls map[string]int
}

type fakeMail struct {
	msg  connector.Message
	atts []connector.Attachment
	mime []byte
	seq  int64
}

type removal struct {
	seq int64
	id  string
}

func newFakeMailbox() *fakeMailbox {
	return &fakeMailbox{
		mails:    make(map[string]*fakeMail),
		removals: make(map[string][]removal),
		folders:  map[string]string{"inbox": "inbox"},
		rounds:   make(map[int][]connector.Message),
		pageSize: 10,
		calls:    make(map[string]int),
	}
}

func (f *fakeMailbox) Open(context.Context, connector.Connection) (Mailbox, error) { return f, nil }

// deliver puts a mail into folder and returns its id.
func (f *fakeMailbox) deliver(folder string, m connector.Message, atts ...connector.Attachment) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	f.seq++
	m.ID = "m" + strconv.Itoa(f.nextID)
	m.ParentFolderID = folder
	m.HasAttachments = len(atts) > 0
	for i := range atts {
		if atts[i].ID == "" {
			atts[i].ID = fmt.Sprintf("a%d", i)
		}
		if atts[i].Size == 0 {
			atts[i].Size = int64(len(atts[i].Content))
		}
	}
	f.mails[m.ID] = &fakeMail{msg: m, atts: atts, mime: []byte("Subject: " + m.Subject + "\r\n\r\nbody"), seq: f.seq}
	return m.ID
}

func (f *fakeMailbox) fail(op, arg string) error {
	f.calls[op]++
	if f.fault == nil {
		return nil
	}
	return f.fault(op, arg)
}

// resetSync makes every link issued so far answer SyncReset.
func (f *fakeMailbox) resetSync() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	f.resetBefore = f.seq
}

func (f *fakeMailbox) Delta(ctx context.Context, folder, link string, since time.Time) (connector.DeltaPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("delta", link); err != nil {
		return connector.DeltaPage{}, err
	}
	gone := connector.E("fake: delta", connector.SyncReset, errors.New("SyncStateNotFound"))
	parts := strings.Split(link, "|")
	switch parts[0] {
	case "": // a new round over what is in the folder now
		var list []connector.Message
		for _, m := range f.sorted(folder) {
			if since.IsZero() || !m.msg.ReceivedAt.Before(since) {
				list = append(list, m.msg)
			}
		}
		return f.serve(folder, f.newRound(list), 0, f.seq), nil
	case "delta":
		from, _ := strconv.ParseInt(parts[2], 10, 64)
		if from < f.resetBefore {
			return connector.DeltaPage{}, gone
		}
		type change struct {
			seq int64
			msg connector.Message
		}
		var cs []change
		for _, m := range f.sorted(folder) {
			if m.seq > from {
				cs = append(cs, change{m.seq, m.msg})
			}
		}
		for _, r := range f.removals[folder] {
			if r.seq > from {
				cs = append(cs, change{r.seq, connector.Message{ID: r.id, Removed: true}})
			}
		}
		sort.Slice(cs, func(i, j int) bool { return cs[i].seq < cs[j].seq })
		list := make([]connector.Message, len(cs))
		for i, c := range cs {
			list[i] = c.msg
		}
		return f.serve(folder, f.newRound(list), 0, f.seq), nil
	case "next":
		token, _ := strconv.Atoi(parts[2])
		off, _ := strconv.Atoi(parts[3])
		upto, _ := strconv.ParseInt(parts[4], 10, 64)
		if upto < f.resetBefore {
			return connector.DeltaPage{}, gone
		}
		return f.serve(folder, token, off, upto), nil
	}
	return connector.DeltaPage{}, connector.E("fake: delta", connector.Invalid, fmt.Errorf("bad link %q", link))
}

// CountMessages counts the mails in folder received at or after since.
func (f *fakeMailbox) CountMessages(ctx context.Context, folder string, since time.Time) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("count", folder); err != nil {
		return 0, err
	}
	n := 0
	for _, m := range f.sorted(folder) {
		if since.IsZero() || !m.msg.ReceivedAt.Before(since) {
			n++
		}
	}
	return n, nil
}

func (f *fakeMailbox) newRound(list []connector.Message) int {
	f.nextRound++
	f.rounds[f.nextRound] = list
	return f.nextRound
}

func (f *fakeMailbox) serve(folder string, token, off int, upto int64) connector.DeltaPage {
	list := f.rounds[token]
	end := min(off+f.pageSize, len(list))
	page := connector.DeltaPage{Messages: slices.Clone(list[off:end])}
	for i := range page.Messages {
		page.Messages[i].Categories = slices.Clone(page.Messages[i].Categories)
	}
	if end < len(list) {
		page.NextLink = fmt.Sprintf("next|%s|%d|%d|%d", folder, token, end, upto)
	} else {
		page.DeltaLink = fmt.Sprintf("delta|%s|%d", folder, upto)
	}
	return page
}

func (f *fakeMailbox) sorted(folder string) []*fakeMail {
	var ms []*fakeMail
	for _, m := range f.mails {
		if m.msg.ParentFolderID == folder {
			ms = append(ms, m)
		}
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].seq < ms[j].seq })
	return ms
}

func notFound(op, id string) error {
	return connector.E("fake: "+op, connector.NotFound, fmt.Errorf("%s not found", id))
}

// Attachments lists a mail's attachments. With a sink, every file
// attachment's bytes come along, as Graph's contentBytes do; without one,
// only the metadata.
func (f *fakeMailbox) Attachments(ctx context.Context, messageID string, sink connector.Sink) ([]connector.Attachment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("attachments", messageID); err != nil {
		return nil, err
	}
	m, ok := f.mails[messageID]
	if !ok {
		return nil, notFound("attachments", messageID)
	}
	out := make([]connector.Attachment, len(m.atts))
	for i, a := range m.atts {
		content := a.Content
		a.Content = nil
		if sink != nil && a.Type == connector.FileAttachment {
			d, err := sink(bytes.NewReader(content))
			if err != nil {
				for _, o := range out[:i] {
					if o.Data != nil {
						o.Data.Close()
					}
				}
				return nil, err
			}
			a.Data = d
		}
		out[i] = a
	}
	return out, nil
}

// Attachment reads one attachment with its bytes through the sink.
func (f *fakeMailbox) Attachment(ctx context.Context, messageID, attachmentID string, sink connector.Sink) (connector.Attachment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("attachment", attachmentID); err != nil {
		return connector.Attachment{}, err
	}
	m, ok := f.mails[messageID]
	if !ok {
		return connector.Attachment{}, notFound("attachment", messageID)
	}
	for _, a := range m.atts {
		if a.ID != attachmentID {
			continue
		}
		content := a.Content
		a.Content = nil
		if a.Type == connector.FileAttachment {
			d, err := sink(bytes.NewReader(content))
			if err != nil {
				return connector.Attachment{}, err
			}
			a.Data = d
		}
		return a, nil
	}
	return connector.Attachment{}, notFound("attachment", attachmentID)
}

func (f *fakeMailbox) Message(ctx context.Context, messageID string) (connector.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("get", messageID); err != nil {
		return connector.Message{}, err
	}
	m, ok := f.mails[messageID]
	if !ok {
		return connector.Message{}, notFound("message", messageID)
	}
	return m.msg, nil
}

func (f *fakeMailbox) OpenAttachment(ctx context.Context, messageID, attachmentID string) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.mails[messageID]
	if !ok {
		return nil, notFound("open", messageID)
	}
	for _, a := range m.atts {
		if a.ID == attachmentID {
			if err := f.fail("open", a.Name); err != nil {
				return nil, err
			}
			if a.Type == connector.ItemAttachment && a.Content == nil { // else: the attached mail's MIME
				return io.NopCloser(strings.NewReader("Subject: attached\r\n\r\nhello")), nil
			}
			return io.NopCloser(bytes.NewReader(a.Content)), nil
		}
	}
	return nil, notFound("open", attachmentID)
}

func (f *fakeMailbox) OpenMessage(ctx context.Context, messageID string) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("message", messageID); err != nil {
		return nil, err
	}
	m, ok := f.mails[messageID]
	if !ok {
		return nil, notFound("message", messageID)
	}
	return io.NopCloser(bytes.NewReader(m.mime)), nil
}

// move moves a mail like Graph: a removal in the old folder, a change in
// the new one, and a new id unless ids are immutable.
func (f *fakeMailbox) move(messageID, folderID string) (string, error) {
	m, ok := f.mails[messageID]
	if !ok {
		return "", notFound("move", messageID)
	}
	f.seq++
	f.removals[m.msg.ParentFolderID] = append(f.removals[m.msg.ParentFolderID], removal{f.seq, messageID})
	delete(f.mails, messageID)
	if !f.immutable {
		f.nextID++
		m.msg.ID = "m" + strconv.Itoa(f.nextID)
	}
	m.msg.ParentFolderID = folderID
	m.seq = f.seq
	f.mails[m.msg.ID] = m
	return m.msg.ID, nil
}

func (f *fakeMailbox) Move(ctx context.Context, messageID, folderID string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("move", messageID); err != nil {
		return "", err
	}
	return f.move(messageID, folderID)
}

// personMove is a person moving a mail in Outlook.
func (f *fakeMailbox) personMove(messageID, folderID string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, err := f.move(messageID, folderID)
	if err != nil {
		panic(err)
	}
	return id
}

func (f *fakeMailbox) change(op, messageID string, fn func(*connector.Message)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(op, messageID); err != nil {
		return err
	}
	m, ok := f.mails[messageID]
	if !ok {
		return notFound(op, messageID)
	}
	fn(&m.msg)
	f.seq++
	m.seq = f.seq
	return nil
}

func (f *fakeMailbox) MarkRead(ctx context.Context, messageID string) error {
	return f.change("markread", messageID, func(m *connector.Message) { m.IsRead = true })
}

func (f *fakeMailbox) AddCategory(ctx context.Context, messageID, category string, existing []string) error {
	return f.change("category", messageID, func(m *connector.Message) {
		m.Categories = append(slices.Clone(existing), category)
	})
}

func (f *fakeMailbox) EnsureFolder(ctx context.Context, name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("folder", name); err != nil {
		return "", err
	}
	if id, ok := f.folders[name]; ok {
		return id, nil
	}
	id := "folder-" + name
	f.folders[name] = id
	return id, nil
}

func (f *fakeMailbox) count(folder string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sorted(folder))
}

func (f *fakeMailbox) callCount(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// fakeMailboxes opens one fake mailbox per connection id.
type fakeMailboxes map[string]*fakeMailbox

func (m fakeMailboxes) Open(_ context.Context, c connector.Connection) (Mailbox, error) {
	mb, ok := m[c.ID]
	if !ok {
		return nil, fmt.Errorf("no mailbox for %s", c.ID)
	}
	return mb, nil
}

// fakeConnections is an in-memory connection store with the same Update
// contract as connector.Store.
type fakeConnections struct {
	mu    sync.Mutex
	conns map[string]connector.Connection
	gets  int // Get calls
}

func newFakeConnections(cs ...connector.Connection) *fakeConnections {
	f := &fakeConnections{conns: make(map[string]connector.Connection)}
	for _, c := range cs {
		f.conns[c.ID] = c
	}
	return f
}

func (f *fakeConnections) List(context.Context) ([]connector.Connection, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []connector.Connection
	for _, c := range f.conns {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (f *fakeConnections) Get(_ context.Context, id string) (connector.Connection, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	c, ok := f.conns[id]
	if !ok {
		return connector.Connection{}, notFound("connection", id)
	}
	return c, nil
}

func (f *fakeConnections) Update(_ context.Context, id string, fn func(*connector.Connection) error) (connector.Connection, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.conns[id]
	if !ok {
		return connector.Connection{}, notFound("connection", id)
	}
	if err := fn(&c); err != nil {
		return connector.Connection{}, err
	}
	f.conns[id] = c
	return c, nil
}

// memStore is a content-addressed in-memory archive.Store.
type memStore struct {
	mu      sync.Mutex
	objects map[string][]byte
	meta    map[string]archive.Meta
	puts    int
	fail    func(key string) error // fault injection before storing
}

func newMemStore() *memStore {
	return &memStore{objects: make(map[string][]byte), meta: make(map[string]archive.Meta)}
}

func (s *memStore) Bucket() string { return "mem" }

func (s *memStore) Put(ctx context.Context, key string, body io.Reader, size int64, sum string, meta archive.Meta) (archive.ObjectRef, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return archive.ObjectRef{}, err
	}
	h := sha256.Sum256(b)
	if int64(len(b)) != size || hex.EncodeToString(h[:]) != sum {
		return archive.ObjectRef{}, archive.ErrChecksum
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		if err := s.fail(key); err != nil {
			return archive.ObjectRef{}, err
		}
	}
	s.puts++
	if _, ok := s.objects[key]; !ok {
		s.objects[key] = b
		s.meta[key] = meta
	}
	return archive.ObjectRef{Bucket: "mem", Key: key}, nil
}

func (s *memStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.objects)
}

// recEvents records events and, like a JetStream stream with Nats-Msg-Id,
// accepts each id once.
type recEvents struct {
	mu       sync.Mutex
	imported map[string]archive.Imported
	skipped  map[string]archive.Skipped
	calls    map[string]int // raw publish calls per id
	fail     func(id string) error
}

func newRecEvents() *recEvents {
	return &recEvents{imported: make(map[string]archive.Imported), skipped: make(map[string]archive.Skipped), calls: make(map[string]int)}
}

func (e *recEvents) Imported(ctx context.Context, id string, d archive.Imported) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail != nil {
		if err := e.fail(id); err != nil {
			return err
		}
	}
	e.calls[id]++
	if _, ok := e.imported[id]; !ok {
		e.imported[id] = d
	}
	return nil
}

func (e *recEvents) Skipped(ctx context.Context, id string, d archive.Skipped) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls[id]++
	if _, ok := e.skipped[id]; !ok {
		e.skipped[id] = d
	}
	return nil
}

// AnnouncedSince returns every id published: the fake keeps no times.
func (e *recEvents) AnnouncedSince(context.Context, string, time.Time) (map[string]bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ids := make(map[string]bool)
	for id := range e.calls {
		ids[id] = true
	}
	return ids, nil
}

func (e *recEvents) reasons() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int)
	for _, s := range e.skipped {
		out[s.Reason]++
	}
	return out
}

func (e *recEvents) counts() (imported, skipped int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.imported), len(e.skipped)
}

// maxCalls is the most raw publish calls any one id got.
func (e *recEvents) maxCalls() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, c := range e.calls {
		n = max(n, c)
	}
	return n
}

// fakeClock is a settable clock whose After fires at once and records the
// waits asked for.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, d)
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}
