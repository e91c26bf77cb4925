package graph

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/mailgate/mailgate/connector"
)

// messageFields are the message properties connector.Message needs.
var messageFields = []string{
	"id", "internetMessageId", "subject", "from", "receivedDateTime",
	"hasAttachments", "isRead", "body", "categories", "parentFolderId",
}

// Delta returns one page of a delta round over folder. With link "" it
// starts a round on folder (a well-known name such as "inbox", or an id),
// filtered to receivedDateTime ≥ since unless since is zero; otherwise it
// follows link (a next or delta link from an earlier page) verbatim.
// "@removed" entries come back as Message{Removed: true}; a message that
// appears twice in a page is returned once, with its last state.
// A lost sync state is a *connector.Error of Kind SyncReset.
func (m *Mailbox) Delta(ctx context.Context, folder, link string, since time.Time) (connector.DeltaPage, error) {
	op := m.op("delta")
	ctx, cancel, err := m.begin(ctx, op)
	defer cancel()
	if err != nil {
		return connector.DeltaPage{}, err
	}
	cfg := &users.ItemMailFoldersItemMessagesDeltaRequestBuilderGetRequestConfiguration{
		Headers: m.headers(m.c.cfg.PageSize),
	}
	b := m.user().MailFolders().ByMailFolderId(folder).Messages().Delta()
	if link != "" {
		if err := m.checkLink(link); err != nil {
			return connector.DeltaPage{}, connector.E(op, connector.Invalid, err)
		}
		b = b.WithUrl(link)
	} else {
		if folder == "" {
			return connector.DeltaPage{}, connector.E(op, connector.Invalid, errors.New("folder is required"))
		}
		q := &users.ItemMailFoldersItemMessagesDeltaRequestBuilderGetQueryParameters{Select: messageFields}
		if !since.IsZero() {
			f := "receivedDateTime ge " + since.UTC().Format(time.RFC3339)
			q.Filter = &f
		}
		cfg.QueryParameters = q
	}
	resp, err := b.GetAsDeltaGetResponse(ctx, cfg)
	if err != nil {
		return connector.DeltaPage{}, classify(op, err)
	}
	if resp == nil {
		return connector.DeltaPage{}, connector.E(op, connector.Transient, errors.New("empty delta response"))
	}
	page := connector.DeltaPage{
		NextLink:  deref(resp.GetOdataNextLink()),
		DeltaLink: deref(resp.GetOdataDeltaLink()),
	}
	if (page.NextLink == "") == (page.DeltaLink == "") {
		return connector.DeltaPage{}, connector.E(op, connector.Transient,
			errors.New("delta page must carry exactly one of @odata.nextLink and @odata.deltaLink"))
	}
	seen := make(map[string]int)
	for _, gm := range resp.GetValue() {
		if gm == nil {
			continue
		}
		msg := toMessage(gm)
		if i, ok := seen[msg.ID]; ok && msg.ID != "" {
			page.Messages[i] = msg
			continue
		}
		seen[msg.ID] = len(page.Messages)
		page.Messages = append(page.Messages, msg)
	}
	return page, nil
}

// checkLink refuses links that don't point below BaseURL's origin; the
// token provider would refuse them too, this gives a clearer error.
func (m *Mailbox) checkLink(link string) error {
	u, err := url.Parse(link)
	if err != nil {
		return fmt.Errorf("link: %w", err)
	}
	if u.Scheme != m.c.base.Scheme || u.Host != m.c.base.Host {
		return fmt.Errorf("link %s://%s is not on %s://%s", u.Scheme, u.Host, m.c.base.Scheme, m.c.base.Host)
	}
	return nil
}

func toMessage(gm models.Messageable) connector.Message {
	msg := connector.Message{
		ID:                deref(gm.GetId()),
		InternetMessageID: deref(gm.GetInternetMessageId()),
		Subject:           deref(gm.GetSubject()),
		HasAttachments:    deref(gm.GetHasAttachments()),
		IsRead:            deref(gm.GetIsRead()),
		Categories:        gm.GetCategories(),
		ParentFolderID:    deref(gm.GetParentFolderId()),
	}
	if _, ok := gm.GetAdditionalData()["@removed"]; ok {
		msg.Removed = true
	}
	if t := gm.GetReceivedDateTime(); t != nil {
		msg.ReceivedAt = t.UTC()
	}
	if from := gm.GetFrom(); from != nil {
		if ea := from.GetEmailAddress(); ea != nil {
			msg.From = deref(ea.GetAddress())
			msg.FromName = deref(ea.GetName())
		}
	}
	if body := gm.GetBody(); body != nil {
		if ct := body.GetContentType(); ct != nil && *ct == models.HTML_BODYTYPE {
			msg.BodyRefs = cidRefs(deref(body.GetContent()))
		}
	}
	return msg
}

// Message reads one message by its id (…/messages/{id}), with the same
// properties a delta page carries. With immutable ids a message keeps its
// id when a person moves it, so a mail parked for a retry is found
// wherever it went; a deleted one is a *connector.Error of Kind NotFound.
func (m *Mailbox) Message(ctx context.Context, messageID string) (connector.Message, error) {
	op := m.op("message")
	ctx, cancel, err := m.begin(ctx, op)
	defer cancel()
	if err != nil {
		return connector.Message{}, err
	}
	gm, err := m.user().Messages().ByMessageId(messageID).Get(ctx, &users.ItemMessagesMessageItemRequestBuilderGetRequestConfiguration{
		Headers:         m.headers(0),
		QueryParameters: &users.ItemMessagesMessageItemRequestBuilderGetQueryParameters{Select: messageFields},
	})
	if err != nil {
		return connector.Message{}, classify(op, err)
	}
	if gm == nil {
		return connector.Message{}, connector.E(op, connector.Transient, errors.New("empty message response"))
	}
	return toMessage(gm), nil
}

// cidRefs returns the cid: references of an HTML body, space-separated,
// each once, without the surrounding markup: quotes, parentheses or
// whitespace end a reference. The scheme is matched in ASCII case only,
// on the body's own bytes (lower-casing it whole would move offsets:
// "İ" or the Kelvin sign change length), and the body is read once:
// any sender writes the body, and a delta page holds many.
func cidRefs(html string) string {
	var refs []string
	seen := make(map[string]bool)
	for i := 0; i < len(html); {
		j := strings.IndexByte(html[i:], ':')
		if j < 0 {
			break
		}
		colon := i + j
		if colon-i < len("cid") || !strings.EqualFold(html[colon-3:colon], "cid") {
			i = colon + 1
			continue
		}
		start := colon - 3
		end := strings.IndexAny(html[start:], "\"' \t\r\n<>()")
		if end < 0 {
			end = len(html) - start
		}
		if ref := html[start : start+end]; len(ref) > len("cid:") && !seen[ref] {
			seen[ref] = true
			refs = append(refs, ref)
		}
		i = start + end
	}
	return strings.Join(refs, " ")
}
