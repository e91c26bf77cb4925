package graphtest

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"
	"time"
)

// wellKnownFolders are created in every mailbox, in this order.
var wellKnownFolders = []struct{ name, display string }{
	{"inbox", "Inbox"},
	{"archive", "Archive"},
	{"deleteditems", "Deleted Items"},
	{"sentitems", "Sent Items"},
	{"drafts", "Drafts"},
	{"junkemail", "Junk Email"},
}

type mailbox struct {
	Mailbox
	folders map[string]*folder // by id
	msgs    map[string]*message
	seq     int64 // last change sequence
	epoch   int   // bumped by ResetDelta
	// onChange hears every change to a message in a folder (s.mu held):
	// change notifications hook in here.
	onChange func(mailChange)
}

// mailChange is one change to a message in one folder.
type mailChange struct {
	folderID        string
	id, immutableID string
	etag            string
	changeType      string // created, updated, deleted
}

func (mb *mailbox) changed(folderID string, m *message, changeType string) {
	if mb.onChange != nil {
		mb.onChange(mailChange{folderID: folderID, id: m.id, immutableID: m.immutableID,
			etag: `W/"` + m.changeKey() + `"`, changeType: changeType})
	}
}

type folder struct {
	id, name, parentID, wellKnown string
	removed                       []removal // tombstones of messages that left, by seq
	created                       time.Time
}

type removal struct {
	seq         int64
	id          string // mutable id the message had in this folder
	immutableID string
}

type message struct {
	id, immutableID string
	folderID        string
	mail            Mail
	isRead          bool
	categories      []string
	seq             int64 // change sequence of the last change
	enterSeq        int64 // change sequence when it entered its folder
	version         int
	created         time.Time
	modified        time.Time
	attachments     []*attachment
}

type attachment struct {
	id       string
	a        Attachment
	modified time.Time
	mime     []byte // itemAttachment: the attached mail as MIME
}

func newMailbox(m Mailbox) *mailbox {
	mb := &mailbox{Mailbox: m, folders: map[string]*folder{}, msgs: map[string]*message{}}
	root := &folder{id: exchangeID("AQMkAD"), name: "Top of Information Store", wellKnown: "msgfolderroot"}
	mb.folders[root.id] = root
	for _, w := range wellKnownFolders {
		f := &folder{id: exchangeID("AQMkAD"), name: w.display, parentID: root.id, wellKnown: w.name}
		mb.folders[f.id] = f
	}
	return mb
}

// resolve finds a folder chain (a top folder by id or well-known name,
// then child folder ids), or nil.
func (mb *mailbox) resolve(keys []string) *folder {
	var f *folder
	for i, key := range keys {
		var next *folder
		if i == 0 {
			next = mb.folders[key]
			if next == nil {
				for _, c := range mb.folders {
					if c.wellKnown != "" && strings.EqualFold(c.wellKnown, key) {
						next = c
					}
				}
			}
		} else if c := mb.folders[key]; c != nil && c.parentID == f.id {
			next = c
		}
		if next == nil {
			return nil
		}
		f = next
	}
	return f
}

func (mb *mailbox) root() *folder {
	for _, f := range mb.folders {
		if f.wellKnown == "msgfolderroot" {
			return f
		}
	}
	return nil
}

// folder finds a folder by id, well-known name or (unique) display name.
func (mb *mailbox) folder(key string) *folder {
	if f := mb.folders[key]; f != nil {
		return f
	}
	for _, f := range mb.folders {
		if f.wellKnown != "" && strings.EqualFold(f.wellKnown, key) {
			return f
		}
	}
	for _, f := range mb.folders {
		if f.wellKnown != "msgfolderroot" && strings.EqualFold(f.name, key) {
			return f
		}
	}
	return nil
}

// children lists the child folders of parent in a stable order.
func (mb *mailbox) children(parentID string) []*folder {
	var out []*folder
	for _, f := range mb.folders {
		if f.parentID == parentID {
			out = append(out, f)
		}
	}
	order := map[string]int{}
	for i, w := range wellKnownFolders {
		order[w.name] = i + 1
	}
	sort.Slice(out, func(i, j int) bool {
		oi, oj := order[out[i].wellKnown], order[out[j].wellKnown]
		if oi == 0 {
			oi = 1000
		}
		if oj == 0 {
			oj = 1000
		}
		if oi != oj {
			return oi < oj
		}
		return out[i].name < out[j].name
	})
	return out
}

func (mb *mailbox) message(id string) *message {
	if m := mb.msgs[id]; m != nil {
		return m
	}
	for _, m := range mb.msgs {
		if m.id == id {
			return m
		}
	}
	return nil
}

// sorted lists all messages oldest first.
func (mb *mailbox) sorted() []*message {
	out := make([]*message, 0, len(mb.msgs))
	for _, m := range mb.msgs {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].mail.ReceivedAt.Equal(out[j].mail.ReceivedAt) {
			return out[i].mail.ReceivedAt.Before(out[j].mail.ReceivedAt)
		}
		return out[i].created.Before(out[j].created) || (out[i].created.Equal(out[j].created) && out[i].immutableID < out[j].immutableID)
	})
	return out
}

func (mb *mailbox) nextSeq() int64 {
	mb.seq++
	return mb.seq
}

func (mb *mailbox) deliver(f *folder, m Mail, now time.Time) *message {
	if m.ReceivedAt.IsZero() {
		m.ReceivedAt = now
	}
	m.ReceivedAt = m.ReceivedAt.UTC().Truncate(time.Second)
	if m.InternetMessageID == "" {
		m.InternetMessageID = "<" + randToken(12) + "@" + domainOf(m.From) + ">"
	}
	msg := &message{
		id: exchangeID("AAMkAD"), immutableID: exchangeID("AAkALg"), folderID: f.id,
		mail: m, isRead: m.IsRead, categories: append([]string{}, m.Categories...),
		seq: mb.nextSeq(), version: 1, created: now, modified: now,
	}
	msg.enterSeq = msg.seq
	for _, a := range m.Attachments {
		if a.ContentType == "" && a.ReferenceURL == "" && a.Item == nil {
			a.ContentType = "application/octet-stream" // Exchange always reports one
		}
		at := &attachment{id: exchangeID("AAMkAD"), a: a, modified: now}
		if a.Item != nil {
			at.mime = buildMIME(*a.Item)
		}
		msg.attachments = append(msg.attachments, at)
	}
	msg.mail.Attachments = nil
	mb.msgs[msg.immutableID] = msg
	mb.changed(f.id, msg, "created")
	return msg
}

// touch records a change to a message (it shows up in the next delta round).
func (mb *mailbox) touch(m *message, now time.Time) {
	m.seq = mb.nextSeq()
	m.version++
	m.modified = now
	mb.changed(m.folderID, m, "updated")
}

// move moves m to f: a new mutable id, a tombstone in the folder it left.
func (mb *mailbox) move(m *message, f *folder) {
	if m.folderID == f.id {
		return
	}
	old := mb.folders[m.folderID]
	old.removed = append(old.removed, removal{seq: mb.nextSeq(), id: m.id, immutableID: m.immutableID})
	mb.changed(old.id, m, "deleted")
	m.folderID = f.id
	m.id = exchangeID("AAMkAD")
	m.seq = mb.nextSeq()
	m.enterSeq = m.seq
	m.version++
	mb.changed(f.id, m, "created")
}

func (mb *mailbox) remove(m *message) {
	old := mb.folders[m.folderID]
	old.removed = append(old.removed, removal{seq: mb.nextSeq(), id: m.id, immutableID: m.immutableID})
	delete(mb.msgs, m.immutableID)
	mb.changed(old.id, m, "deleted")
}

func (m *message) hasAttachments() bool {
	for _, a := range m.attachments {
		if !a.a.Inline {
			return true
		}
	}
	return false
}

func (m *message) changeKey() string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", m.immutableID, m.version)))
	return "CQAAABYAAAD" + base64.StdEncoding.EncodeToString(sum[:12])
}

func (a *attachment) size() int {
	switch {
	case a.a.Item != nil:
		return len(a.mime)
	case a.a.ReferenceURL != "":
		return 0
	}
	return len(a.a.Content)
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return "sim.example"
}
