package graph

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/mailgate/mailgate/connector"
)

// attachmentFields is the metadata of the attachment base type. contentId
// and contentBytes exist on fileAttachment only and can't be selected on
// the collection (Graph answers RequestBroker--ParseUri "Could not find a
// property named 'contentId' on type 'microsoft.graph.attachment'"); listing
// without $select would return the bytes of every attachment as base64,
// however large.
var attachmentFields = []string{"id", "name", "contentType", "size", "isInline", "lastModifiedDateTime"}

// Attachments lists the attachments of a message.
//
// With a sink, one request (per page) lists them with their content:
// Graph's listing without $select carries each file attachment's bytes as
// base64 contentBytes, and its contentId. The listing is parsed as a
// stream; each contentBytes is decoded on the fly and handed to sink, whose
// Content lands in Attachment.Data. Memory stays bounded whatever the size
// of the attachments. A file attachment whose contentBytes Graph left out
// (or sent as null) has Data nil: read it with OpenAttachment. On error
// every Content made is closed. The caller closes the Data of the result.
// The body may take as long as ctx allows (no DefaultTimeout).
//
// Without a sink, only the metadata is listed (contentId and the bytes
// cannot be selected on the collection, see attachmentFields): read the
// bytes with OpenAttachment, or an attachment with its contentId and
// bytes with Attachment.
func (m *Mailbox) Attachments(ctx context.Context, messageID string, sink connector.Sink) ([]connector.Attachment, error) {
	op := m.op("attachments")
	if sink != nil {
		return m.attachmentsWithContent(ctx, op, messageID, sink)
	}
	ctx, cancel, err := m.begin(ctx, op)
	defer cancel()
	if err != nil {
		return nil, err
	}
	b := m.user().Messages().ByMessageId(messageID).Attachments()
	resp, err := b.Get(ctx, &users.ItemMessagesItemAttachmentsRequestBuilderGetRequestConfiguration{
		Headers:         m.headers(0),
		QueryParameters: &users.ItemMessagesItemAttachmentsRequestBuilderGetQueryParameters{Select: attachmentFields},
	})
	var out []connector.Attachment
	for pages := 1; ; pages++ {
		if err != nil {
			return nil, classify(op, err)
		}
		if pages > maxPages {
			return nil, errTooManyPages(op)
		}
		if resp == nil {
			return nil, connector.E(op, connector.Transient, errors.New("empty attachments response"))
		}
		for _, ga := range resp.GetValue() {
			if ga != nil {
				out = append(out, toAttachment(ga))
			}
		}
		next := deref(resp.GetOdataNextLink())
		if next == "" {
			break
		}
		if err := m.checkLink(next); err != nil {
			return nil, connector.E(op, connector.Invalid, err)
		}
		resp, err = b.WithUrl(next).Get(ctx, &users.ItemMessagesItemAttachmentsRequestBuilderGetRequestConfiguration{Headers: m.headers(0)})
	}
	return out, nil
}

// Attachment reads one attachment as JSON (…/attachments/{id}), with its
// contentId and its bytes: contentBytes is decoded as it streams in and
// handed to sink, whose Content lands in Data (nil when Graph left the
// bytes out). One request; the caller closes Data.
func (m *Mailbox) Attachment(ctx context.Context, messageID, attachmentID string, sink connector.Sink) (connector.Attachment, error) {
	op := m.op("attachment")
	ri := abs.NewRequestInformationWithMethodAndUrlTemplateAndPathParameters(abs.GET,
		"{+baseurl}/users/{user%2Did}/messages/{message%2Did}/attachments/{attachment%2Did}",
		map[string]string{"user%2Did": m.address, "message%2Did": messageID, "attachment%2Did": attachmentID})
	body, err := m.open(ctx, op, ri, "application/json")
	if err != nil {
		return connector.Attachment{}, err
	}
	defer body.Close()
	a, err := parseAttachment(body, sink)
	if err != nil {
		return connector.Attachment{}, classifyList(op, err)
	}
	return a, nil
}

// attachmentsWithContent is Attachments with a sink. On error it closes
// every Content made.
func (m *Mailbox) attachmentsWithContent(ctx context.Context, op, messageID string, sink connector.Sink) (out []connector.Attachment, err error) {
	defer func() {
		if err != nil {
			closeAll(out)
			out = nil
		}
	}()
	ri := abs.NewRequestInformationWithMethodAndUrlTemplateAndPathParameters(abs.GET,
		"{+baseurl}/users/{user%2Did}/messages/{message%2Did}/attachments",
		map[string]string{"user%2Did": m.address, "message%2Did": messageID})
	kept := maxKept
	for pages := 1; ; pages++ {
		if pages > maxPages {
			return out, errTooManyPages(op)
		}
		body, err := m.open(ctx, op, ri, "application/json")
		if err != nil {
			return out, err
		}
		var page []connector.Attachment
		var next string
		page, next, kept, err = parsePage(body, sink, kept)
		body.Close()
		if err != nil {
			return out, classifyList(op, err)
		}
		out = append(out, page...)
		if next == "" {
			return out, nil
		}
		if err := m.checkLink(next); err != nil {
			return out, connector.E(op, connector.Invalid, err)
		}
		u, err := url.Parse(next)
		if err != nil { // checkLink parsed it already
			return out, connector.E(op, connector.Invalid, err)
		}
		ri = abs.NewRequestInformation()
		ri.Method = abs.GET
		ri.SetUri(*u)
	}
}

// errTooManyPages ends a listing whose next links go on past maxPages.
func errTooManyPages(op string) error {
	return connector.E(op, connector.Invalid, fmt.Errorf("attachment listing: over %d pages", maxPages))
}

func toAttachment(ga models.Attachmentable) connector.Attachment {
	a := connector.Attachment{
		ID:          deref(ga.GetId()),
		Name:        deref(ga.GetName()),
		ContentType: deref(ga.GetContentType()),
		Size:        int64(deref(ga.GetSize())),
		IsInline:    deref(ga.GetIsInline()),
		Type:        connector.AttachmentType(deref(ga.GetOdataType())),
	}
	switch ga := ga.(type) {
	case models.FileAttachmentable:
		a.Type = connector.FileAttachment
		a.ContentID = deref(ga.GetContentId())
	case models.ItemAttachmentable:
		a.Type = connector.ItemAttachment
	case models.ReferenceAttachmentable:
		a.Type = connector.ReferenceAttachment
	}
	return a
}

// OpenAttachment streams the raw content of an attachment
// (…/attachments/{id}/$value). The caller must close the reader; until then
// the request holds one of the mailbox's in-flight slots.
func (m *Mailbox) OpenAttachment(ctx context.Context, messageID, attachmentID string) (io.ReadCloser, error) {
	ri := abs.NewRequestInformationWithMethodAndUrlTemplateAndPathParameters(abs.GET,
		"{+baseurl}/users/{user%2Did}/messages/{message%2Did}/attachments/{attachment%2Did}/$value",
		map[string]string{"user%2Did": m.address, "message%2Did": messageID, "attachment%2Did": attachmentID})
	return m.open(ctx, m.op("attachment"), ri, "*/*")
}

// OpenMessage streams the MIME content of a message (…/messages/{id}/$value).
// The caller must close the reader.
func (m *Mailbox) OpenMessage(ctx context.Context, messageID string) (io.ReadCloser, error) {
	op := m.op("message content")
	if m.adapterErr != nil {
		return nil, connector.E(op, connector.Other, m.adapterErr)
	}
	ri, err := m.user().Messages().ByMessageId(messageID).Content().ToGetRequestInformation(ctx, nil)
	if err != nil {
		return nil, connector.E(op, connector.Invalid, err)
	}
	return m.open(ctx, op, ri, "*/*")
}

// headerTimeout bounds the wait for a content response's headers; the body
// itself may take as long as the caller's context allows, as long as it
// keeps coming: bodyIdleTimeout bounds the wait for its next bytes, so a
// stalled answer frees its in-flight slot and its mail instead of holding
// them until the pass ends (a variable for the tests).
const headerTimeout = DefaultTimeout

var bodyIdleTimeout = DefaultTimeout

var (
	errHeaderTimeout = errors.New("timeout awaiting response headers")
	errBodyIdle      = errors.New("timeout awaiting more of the response body")
)

// open sends ri through the adapter (auth, middleware, limiter) with the
// given Accept header and hands back the unread response body: a response
// handler takes the response before the adapter would read it whole.
func (m *Mailbox) open(ctx context.Context, op string, ri *abs.RequestInformation, accept string) (io.ReadCloser, error) {
	if m.adapterErr != nil {
		return nil, connector.E(op, connector.Other, m.adapterErr)
	}
	ri.Headers = m.headers(0)
	ri.Headers.Add("Accept", accept)
	ctx, cancelCause := context.WithCancelCause(ctx)
	cancel := func() { cancelCause(nil) }
	timer := time.AfterFunc(headerTimeout, func() { cancelCause(errHeaderTimeout) })
	var resp *http.Response
	h := abs.NewRequestHandlerOption()
	h.SetResponseHandler(func(r any, _ abs.ErrorMappings) (any, error) {
		resp, _ = r.(*http.Response)
		return nil, nil
	})
	ri.AddRequestOptions([]abs.RequestOption{h})
	_, err := m.adapter.SendPrimitive(ctx, ri, "[]byte", nil)
	timer.Stop()
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		cancel()
		if errors.Is(context.Cause(ctx), errHeaderTimeout) {
			return nil, connector.E(op, connector.Transient, errHeaderTimeout)
		}
		return nil, classify(op, err)
	}
	if resp == nil {
		cancel()
		return nil, connector.E(op, connector.Transient, errors.New("no response"))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		err := responseError(op, resp)
		cancel()
		return nil, err
	}
	idle := time.AfterFunc(bodyIdleTimeout, func() { cancelCause(errBodyIdle) })
	return &stream{body: resp.Body, ctx: ctx, cancel: cancel, idle: idle, op: op}, nil
}

// stream is a content body: read errors are classified like request errors,
// and Close releases the limiter slot and the request's context. A body
// that sends nothing for bodyIdleTimeout is cut off (Transient).
type stream struct {
	body   io.ReadCloser
	ctx    context.Context
	cancel context.CancelFunc
	idle   *time.Timer
	op     string
	once   sync.Once
}

func (s *stream) Read(p []byte) (int, error) {
	n, err := s.body.Read(p)
	if n > 0 {
		s.idle.Reset(bodyIdleTimeout)
	}
	switch {
	case err == nil || err == io.EOF:
	case errors.Is(context.Cause(s.ctx), errBodyIdle):
		err = connector.E(s.op, connector.Transient, errBodyIdle)
	default:
		err = classify(s.op, err)
	}
	return n, err
}

func (s *stream) Close() error {
	s.idle.Stop()
	err := s.body.Close()
	s.once.Do(s.cancel)
	return err
}
