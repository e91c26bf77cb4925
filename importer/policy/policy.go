package policy

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"image"
	_ "image/gif" // image sizes of signature images
	_ "image/jpeg"
	_ "image/png"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gabriel-vasile/mimetype"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

// DefaultMinImageSize is the smallest image taken for a document.
const DefaultMinImageSize = 10 << 10

// Config says what the policy lets through.
type Config struct {
	// MinImageSize is the smallest image archived (default
	// DefaultMinImageSize); smaller ones are logos and icons.
	MinImageSize int64
	// AllowTypes are further sniffed MIME types (e.g. "text/csv",
	// "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
	// archived as kind "other". PDFs, e-invoices and images need no entry.
	AllowTypes []string
	// SaveEML archives attached mails (item attachments) as .eml files.
	SaveEML bool
	// PDFMaxSize and PDFTimeout bound the reading of a PDF's embedded
	// files (default DefaultPDFMaxSize, DefaultPDFTimeout); a PDF over
	// either is archived as a plain PDF.
	PDFMaxSize int64
	PDFTimeout time.Duration
	// ContentTimeout is the one time bound of all the readers of a
	// document's content (default DefaultContentTimeout): the containers
	// (S/MIME, attached mails), the PDF readers and the XML walker. The
	// importer sets the deadline once per attachment (Policy.Deadline)
	// and the parts of a container share it. A document over it is
	// decided on what was read: a plain PDF, an invoice's data marked
	// archive.CheckIncomplete, a container taken as it is.
	ContentTimeout time.Duration
}

// DefaultContentTimeout bounds the reading of one document's content.
const DefaultContentTimeout = 10 * time.Second

// Policy classifies attachments. It is safe for concurrent use.
type Policy struct {
	minImage   int64
	allow      []string
	saveEML    bool
	pdfMaxSize int64
	pdfTimeout time.Duration
	pdfSlots   chan struct{} // running PDF readers
	content    time.Duration
}

// New returns a policy for cfg with defaults filled in.
func New(cfg Config) *Policy {
	p := &Policy{minImage: cfg.MinImageSize, saveEML: cfg.SaveEML,
		pdfMaxSize: cfg.PDFMaxSize, pdfTimeout: cfg.PDFTimeout, pdfSlots: make(chan struct{}, pdfReaders),
		content: cfg.ContentTimeout}
	if p.minImage <= 0 {
		p.minImage = DefaultMinImageSize
	}
	if p.pdfMaxSize <= 0 {
		p.pdfMaxSize = DefaultPDFMaxSize
	}
	if p.pdfTimeout <= 0 {
		p.pdfTimeout = DefaultPDFTimeout
	}
	if p.content <= 0 {
		p.content = DefaultContentTimeout
	}
	for _, t := range cfg.AllowTypes {
		p.allow = append(p.allow, strings.ToLower(strings.TrimSpace(t)))
	}
	return p
}

// Decision is the policy's verdict on one attachment.
type Decision struct {
	Import      bool
	Kind        string // archive.Kind*; set when Import
	ContentType string // sniffed
	Ext         string // file extension for the sniffed type, without dot
	Syntax      string // SyntaxUBL or SyntaxCII for e-invoices
	Profile     string // e-invoice profile when cheap to tell
	// Invoice is the e-invoice's own data (kinds xrechnung and zugferd),
	// nil when the embedded XML could not be read.
	Invoice *archive.Invoice
	// XML is the e-invoice XML embedded in a zugferd PDF, for the
	// official rules (a string, so a Decision compares); "" for every
	// other kind.
	XML    string
	Reason string // archive.Reason*; set when !Import
	Detail string // the reason in plain words
	// Note says, for an imported document, why its content was read
	// only in part (a bound was met); the decision stands on what was read.
	Note string
}

// Deadline is when the reading of a document's content that starts now
// must end (Config.ContentTimeout).
func (p *Policy) Deadline(now time.Time) time.Time { return now.Add(p.content) }

func skip(reason, detail string) Decision { return Decision{Reason: reason, Detail: detail} }

// Precheck decides what needs no download. ok is false when the content
// must be fetched and passed to Classify.
func (p *Policy) Precheck(a connector.Attachment) (d Decision, ok bool) {
	switch a.Type {
	case connector.ReferenceAttachment:
		return skip(archive.ReasonReference, "the attachment is a link to a cloud file, not a file"), true
	}
	// An attached mail (item attachment) is fetched too: the importer
	// takes its files (UnpackMessage) before Classify decides on the
	// mail itself.
	return Decision{}, false
}

// Classify decides on an attachment from its content. bodyRefs holds the
// cid: references of the mail's HTML body (connector.Message.BodyRefs; the
// body itself will do), used to tell images shown in the body from
// attached ones. rs must be positioned anywhere; Classify seeks as it needs.
// Reading the content ends with ctx (the document's deadline, see
// Deadline): what is not read by then makes no error, only a decision on
// less (Decision.Note says so).
func (p *Policy) Classify(ctx context.Context, a connector.Attachment, bodyRefs string, size int64, rs io.ReadSeeker) (Decision, error) {
	if d, ok := p.Precheck(a); ok {
		return d, nil
	}
	if size == 0 {
		return skip(archive.ReasonEmpty, "the attachment has no content"), nil
	}
	if a.Type == connector.ItemAttachment {
		if !p.saveEML {
			return skip(archive.ReasonItemAttachment, "the attachment is an attached mail; saving mails as .eml is off"), nil
		}
		return Decision{Import: true, Kind: archive.KindEML, ContentType: "message/rfc822", Ext: "eml"}, nil
	}
	if _, err := rs.Seek(0, io.SeekStart); err != nil {
		return Decision{}, fmt.Errorf("policy: seek: %w", err)
	}
	mt, err := mimetype.DetectReader(rs)
	if err != nil {
		return Decision{}, fmt.Errorf("policy: sniff: %w", err)
	}
	ct := baseType(mt.String())
	ext := strings.TrimPrefix(mt.Extension(), ".")
	switch {
	case ct == "application/pkcs7-mime" || ct == "application/pkcs7-signature":
		return Decision{ContentType: ct, Ext: ext, Reason: archive.ReasonTypeNotAllowed,
			Detail: "an S/MIME container (smime.p7m) that could not be opened: the mail is encrypted, or the signature carries no content"}, nil
	case archives[ct]:
		return Decision{ContentType: ct, Ext: ext, Reason: archive.ReasonArchive,
			Detail: fmt.Sprintf("the file is an archive (%s); archives are not unpacked", ct)}, nil
	case isExecutable(mt):
		return Decision{ContentType: ct, Ext: ext, Reason: archive.ReasonDisguised,
			Detail: fmt.Sprintf("the file is an executable (%s), whatever its name says", ct)}, nil
	case ct == "application/pdf":
		return p.classifyPDF(ctx, rs, size)
	case isImage(ct):
		return p.classifyImage(a, bodyRefs, size, ct, ext, rs), nil
	case isXMLOrText(mt) || mt.Is("application/octet-stream"):
		if _, err := rs.Seek(0, io.SeekStart); err != nil {
			return Decision{}, fmt.Errorf("policy: seek: %w", err)
		}
		inv, root, ok := EInvoice{}, xml.Name{}, false
		if looksLikeXML(rs) {
			if _, err := rs.Seek(0, io.SeekStart); err != nil {
				return Decision{}, fmt.Errorf("policy: seek: %w", err)
			}
			inv, root, ok = parseEInvoice(ctx, rs)
		}
		if ok {
			d := Decision{Import: true, Kind: archive.KindXRechnung, ContentType: "application/xml", Ext: "xml",
				Syntax: inv.Syntax, Profile: inv.Profile, Invoice: inv.Data}
			if slices.Contains(inv.Data.Checks, archive.CheckIncomplete) {
				d.Note = "the invoice's data was read only in part: its reading met the document's time bound"
			}
			return d, nil
		}
		if root.Local != "" && !p.allowed(mt) {
			// XML that is no EN 16931 invoice (FatturaPA, an order, any
			// other XML) is a file like any other: archived only when
			// its type is allowed.
			return Decision{ContentType: ct, Ext: ext, Reason: archive.ReasonTypeNotAllowed,
				Detail: fmt.Sprintf("the XML file is not an EN 16931 e-invoice (UBL or CII) but %s; XML files are not archived", xmlRootName(root))}, nil
		}
	}
	if p.allowed(mt) {
		if ext == "" {
			ext = "bin"
		}
		return Decision{Import: true, Kind: archive.KindOther, ContentType: ct, Ext: ext}, nil
	}
	return Decision{ContentType: ct, Ext: ext, Reason: archive.ReasonTypeNotAllowed,
		Detail: fmt.Sprintf("files of type %s are not archived", ct)}, nil
}

func (p *Policy) classifyPDF(ctx context.Context, rs io.ReadSeeker, size int64) (Decision, error) {
	d := Decision{Import: true, Kind: archive.KindPDF, ContentType: "application/pdf", Ext: "pdf"}
	if _, err := rs.Seek(0, io.SeekStart); err != nil {
		return Decision{}, fmt.Errorf("policy: seek: %w", err)
	}
	hint, err := zugferdHint(rs)
	if err != nil {
		return Decision{}, err
	}
	if !hint {
		return d, nil
	}
	if inv, _, ok := p.embeddedInvoice(ctx, rs, size); ok {
		d.Kind, d.Syntax, d.Profile, d.Invoice, d.XML = archive.KindZUGFeRD, inv.Syntax, inv.Profile, inv.Data, string(inv.XML)
	} else if ctx.Err() != nil {
		d.Note = "a plain PDF: its embedded files were not read within the document's time bound"
	}
	return d, nil
}

// signatureName matches names mail programs give body images and logos.
var signatureName = regexp.MustCompile(`(?i)^(image\d{3}|.*logo.*|.*signatur.*|.*banner.*|outlook-.*)\.(png|jpe?g|gif|bmp|webp)$`)

func (p *Policy) classifyImage(a connector.Attachment, bodyRefs string, size int64, ct, ext string, rs io.ReadSeeker) Decision {
	out := Decision{ContentType: ct, Ext: ext}
	switch {
	case referencedInline(a.ContentID, bodyRefs):
		out.Reason = archive.ReasonInline
		out.Detail = fmt.Sprintf("the image is shown in the mail body (cid:%s)", strings.Trim(a.ContentID, "<>"))
	case a.IsInline:
		out.Reason = archive.ReasonInline
		out.Detail = "the image is marked as part of the mail body"
	case size < p.minImage && signatureName.MatchString(a.Name):
		out.Reason = archive.ReasonSignatureLogo
		out.Detail = fmt.Sprintf("a small image (%d bytes) named like a signature logo", size)
	case size < p.minImage:
		out.Reason = archive.ReasonTooSmall
		out.Detail = fmt.Sprintf("the image has %d bytes, less than the %d bytes a scanned document has", size, p.minImage)
	case signatureName.MatchString(a.Name):
		// A plain-text reply keeps the signature's images as attachments
		// with no body to show them in, and a detailed logo or banner is
		// easily larger than a small scan: the picture's shape decides.
		w, h, ok := imageSize(rs)
		if ok && logoShaped(w, h) {
			out.Reason = archive.ReasonSignatureLogo
			out.Detail = fmt.Sprintf("an image of %dx%d pixels, the shape of a logo or banner, named like a signature image", w, h)
			return out
		}
		return Decision{Import: true, Kind: archive.KindImage, ContentType: ct, Ext: ext}
	default:
		return Decision{Import: true, Kind: archive.KindImage, ContentType: ct, Ext: ext}
	}
	return out
}

// imageSize reads an image's dimensions from its header (PNG, JPEG, GIF).
func imageSize(rs io.ReadSeeker) (w, h int, ok bool) {
	if _, err := rs.Seek(0, io.SeekStart); err != nil {
		return 0, 0, false
	}
	c, _, err := image.DecodeConfig(rs)
	if err != nil {
		return 0, 0, false
	}
	return c.Width, c.Height, true
}

// logoShaped reports whether a picture has the shape of a logo or banner
// rather than of a photographed or scanned page: small on either side,
// under a third of a megapixel, or far wider than high.
func logoShaped(w, h int) bool {
	switch {
	case w <= 0 || h <= 0:
		return false
	case min(w, h) < 300, w*h < 300_000, w > 4*h:
		return true
	}
	return false
}

// referencedInline reports whether the HTML body shows the attachment with
// a cid: URL, given the body's references.
func referencedInline(contentID, bodyRefs string) bool {
	cid := strings.TrimSpace(strings.Trim(contentID, "<>"))
	if cid == "" || bodyRefs == "" {
		return false
	}
	return strings.Contains(strings.ToLower(bodyRefs), "cid:"+strings.ToLower(cid))
}

func (p *Policy) allowed(mt *mimetype.MIME) bool {
	for _, t := range p.allow {
		if mt.Is(t) {
			return true
		}
	}
	return false
}

// executables are refused whatever the name or declared type says.
var executables = []string{
	"application/vnd.microsoft.portable-executable", "application/x-elf", "application/x-executable",
	"application/x-sharedlib", "application/x-object", "application/x-mach-binary", "application/x-ms-installer",
	"application/zip", "application/vnd.rar", "application/x-7z-compressed", "application/gzip", "application/x-xz",
	"application/x-bzip2", "application/x-tar", "application/java-archive", "application/vnd.android.package-archive",
	"application/vnd.ms-cab-compressed", "application/x-installshield", "application/x-ms-shortcut",
	"application/x-java-applet", "application/x-rpm", "application/vnd.debian.binary-package", "application/x-archive",
	"application/x-cpio", "application/x-xar", "application/x-chrome-extension",
}

func isExecutable(mt *mimetype.MIME) bool {
	return slices.ContainsFunc(executables, mt.Is)
}

// archives are container formats, by mimetype's canonical names:
// refused with their own reason, so a sender learns to attach the files
// themselves. Java and Android packages stay executables.
var archives = map[string]bool{
	"application/zip": true, "application/vnd.rar": true, "application/x-7z-compressed": true, "application/gzip": true,
	"application/x-xz": true, "application/x-bzip2": true, "application/x-tar": true, "application/vnd.ms-cab-compressed": true,
	"application/x-cpio": true, "application/x-xar": true, "application/zstd": true, "application/x-archive": true,
}

// looksLikeXML reports whether the content starts like XML: '<' after an
// optional byte order mark and white space, in UTF-8 or UTF-16. Other
// text is not handed to the XML decoder, which would read a large text
// file to its end.
func looksLikeXML(r io.Reader) bool {
	head := make([]byte, 512)
	n, _ := io.ReadFull(r, head)
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}), bytes.HasPrefix(head, []byte{0xFE, 0xFF}),
		bytes.HasPrefix(head, []byte{'<', 0}), bytes.HasPrefix(head, []byte{0, '<'}):
		return true
	}
	head = bytes.TrimPrefix(head, utf8BOM)
	head = bytes.TrimLeft(head, " \t\r\n")
	return len(head) > 0 && head[0] == '<'
}

// xmlRootName names an XML root element for a skip detail, with its
// namespace when it has one.
func xmlRootName(n xml.Name) string {
	local := strings.ToValidUTF8(cutUTF8(n.Local, 60), "")
	if n.Space == "" {
		return "<" + local + ">"
	}
	return fmt.Sprintf("<%s> in %s", local, strings.ToValidUTF8(cutUTF8(n.Space, 100), ""))
}

func isImage(ct string) bool {
	switch ct {
	case "image/png", "image/jpeg", "image/tiff", "image/gif", "image/webp",
		"image/heic", "image/heic-sequence", "image/heif", "image/heif-sequence": // iPhone photos
		return true
	}
	return false
}

// isXMLOrText reports whether mt could be an XML file: mimetype says
// text/plain for XML without a prolog.
func isXMLOrText(mt *mimetype.MIME) bool {
	for m := mt; m != nil; m = m.Parent() {
		if m.Is("text/xml") || m.Is("application/xml") || m.Is("text/plain") {
			return true
		}
	}
	return false
}

func baseType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.TrimSpace(strings.ToLower(ct))
}
