package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	absauth "github.com/microsoft/kiota-abstractions-go/authentication"
	absser "github.com/microsoft/kiota-abstractions-go/serialization"
	khttp "github.com/microsoft/kiota-http-go"
	jsonser "github.com/microsoft/kiota-serialization-json-go"
	core "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailgate/mailgate/connector"
)

// Defaults of Config.
const (
	DefaultMaxInFlight = 4                // Graph's concurrent request limit per mailbox
	DefaultRequests    = 10000            // Graph's request limit per app and mailbox …
	DefaultWindow      = 10 * time.Minute // … per ten minutes
	DefaultPageSize    = 50
	// DefaultTimeout bounds a JSON request whose context has no deadline
	// (the SDK's own 100 s client timeout is switched off because it would
	// also cut long content streams).
	DefaultTimeout = 100 * time.Second
)

// Config configures a Client. Zero values take the defaults.
type Config struct {
	BaseURL     string        // Graph base, e.g. https://graph.microsoft.com/v1.0; plain http only for loopback hosts
	HTTPClient  *http.Client  // its Transport is the base (tests); the SDK middleware goes on top
	MaxInFlight int           // per mailbox, default 4 (Graph's per-mailbox concurrency limit)
	Requests    int           // per mailbox per Window, default 10000
	Window      time.Duration // default 10m
	PageSize    int           // Prefer: odata.maxpagesize for delta, default 50
	Logger      *slog.Logger
	Registerer  prometheus.Registerer // graph requests by status, throttled count (nil = none)
}

// TokenFunc returns an access token for Graph. An error that is a
// *connector.Error (NeedsConsent, for instance) is returned unchanged by the
// mailbox operations.
type TokenFunc func(ctx context.Context) (string, error)

// Client talks to Microsoft Graph for any number of mailboxes. Make one per
// process: it holds the per-mailbox limiters.
type Client struct {
	base      *url.URL
	baseURL   string
	transport http.RoundTripper
	hosts     *absauth.AllowedHostsValidator
	parse     absser.ParseNodeFactory
	serialize absser.SerializationWriterFactory
	cfg       Config
	log       *slog.Logger
	metrics   *metrics

	mu       sync.Mutex
	limiters map[string]*limiter // by lower-case mailbox address
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("graph: base url is required")
	}
	base, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("graph: base url: %w", err)
	}
	switch {
	case base.Host == "":
		return nil, fmt.Errorf("graph: base url %q has no host", cfg.BaseURL)
	case base.Scheme == "https":
	case base.Scheme == "http" && isLoopback(base.Hostname()):
	default:
		return nil, fmt.Errorf("graph: base url %q: https required (plain http only for loopback hosts)", cfg.BaseURL)
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.Requests <= 0 {
		cfg.Requests = DefaultRequests
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	hosts, err := absauth.NewAllowedHostsValidatorErrorCheck([]string{base.Hostname()})
	if err != nil {
		return nil, fmt.Errorf("graph: allowed hosts: %w", err)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	transport := http.DefaultTransport
	if cfg.HTTPClient != nil && cfg.HTTPClient.Transport != nil {
		transport = cfg.HTTPClient.Transport
	}
	parse := absser.NewParseNodeFactoryRegistry()
	parse.ContentTypeAssociatedFactories["application/json"] = jsonser.NewJsonParseNodeFactory()
	serialize := absser.NewSerializationWriterFactoryRegistry()
	serialize.ContentTypeAssociatedFactories["application/json"] = jsonser.NewJsonSerializationWriterFactory()
	return &Client{
		base:      base,
		baseURL:   base.String(),
		transport: transport,
		hosts:     hosts,
		parse:     parse,
		serialize: serialize,
		cfg:       cfg,
		log:       cfg.Logger,
		metrics:   m,
		limiters:  make(map[string]*limiter),
	}, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// limiterFor returns the shared limiter of a mailbox.
func (c *Client) limiterFor(address string) *limiter {
	key := strings.ToLower(address)
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.limiters[key]
	if !ok {
		l = newLimiter(c.cfg.MaxInFlight, c.cfg.Requests, c.cfg.Window)
		c.limiters[key] = l
	}
	return l
}

// Mailbox is one mailbox seen through one TokenFunc. It is cheap; the
// limiter behind it is shared by all Mailbox values of the same address.
type Mailbox struct {
	c       *Client
	address string
	adapter *khttp.NetHttpRequestAdapter
	// adapterErr is reported by every operation when the adapter could not
	// be built (it cannot fail with the arguments used; kept for honesty).
	adapterErr error
}

// Mailbox returns the mailbox at address (an SMTP address or UPN; '+' and
// other reserved characters are percent-encoded in the path).
func (c *Client) Mailbox(address string, token TokenFunc) *Mailbox {
	lim := c.limiterFor(address)
	httpClient := &http.Client{
		// The adapter would add this as a context timeout when the context
		// has none; 0 leaves timeouts to us (JSON) and the caller (streams).
		Timeout: 0,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Transport: khttp.NewCustomTransportWithParentTransport(
			&limitedTransport{base: c.transport, lim: lim, metrics: c.metrics, log: c.log, mailbox: address},
			middlewares()...,
		),
	}
	auth := absauth.NewBaseBearerTokenAuthenticationProvider(&tokenProvider{token: token, hosts: c.hosts, scheme: c.base.Scheme})
	adapter, err := khttp.NewNetHttpRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(auth, c.parse, c.serialize, httpClient)
	m := &Mailbox{c: c, address: address, adapterErr: err}
	if err == nil {
		adapter.SetBaseUrl(c.baseURL)
		m.adapter = adapter
	}
	return m
}

// Address is the mailbox's address.
func (m *Mailbox) Address() string { return m.address }

// middlewares is the SDK's default pipeline minus the retry handler (the
// importer owns retries, see the package documentation), minus the
// redirect handler (Graph's mail endpoints don't redirect, and the handler
// leaves intermediate bodies open, which would leak limiter slots), and
// minus the compression handler: mailgate's request bodies are a few
// dozen bytes (a move's destinationId, isRead, categories), and gzipping
// each set up a new compressor: about 1.2 ms of CPU a mail with "move"
// (the bench's docs scenario: 7.0 → 5.9 s for 1,000 documents).
func middlewares() []khttp.Middleware {
	opts := core.GraphClientOptions{GraphServiceLibraryVersion: "1.89.0"}
	return []khttp.Middleware{
		core.NewGraphTelemetryHandler(&opts),
		khttp.NewParametersNameDecodingHandler(),
		khttp.NewUserAgentHandler(),
	}
}

// user is the request builder of /users/{address}.
func (m *Mailbox) user() *users.UserItemRequestBuilder {
	return users.NewUsersRequestBuilderInternal(map[string]string{}, m.adapter).ByUserId(m.address)
}

// headers returns the headers every request carries.
func (m *Mailbox) headers(pageSize int) *abs.RequestHeaders {
	h := abs.NewRequestHeaders()
	prefer := `IdType="ImmutableId"`
	if pageSize > 0 {
		prefer += fmt.Sprintf(", odata.maxpagesize=%d", pageSize)
	}
	h.Add("Prefer", prefer)
	return h
}

// begin starts an operation: it checks the adapter and bounds a JSON request
// without deadline by DefaultTimeout.
func (m *Mailbox) begin(ctx context.Context, op string) (context.Context, context.CancelFunc, error) {
	if m.adapterErr != nil {
		return ctx, func() {}, connector.E(op, connector.Other, m.adapterErr)
	}
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	return ctx, cancel, nil
}

func (m *Mailbox) op(name string) string { return "graph: " + name + " " + m.address }

// tokenProvider hands TokenFunc's token to the SDK, but only for BaseURL's
// host and scheme: a next link pointing elsewhere never sees the token.
type tokenProvider struct {
	token  TokenFunc
	hosts  *absauth.AllowedHostsValidator
	scheme string
}

func (p *tokenProvider) GetAuthorizationToken(ctx context.Context, u *url.URL, _ map[string]any) (string, error) {
	if !p.hosts.IsUrlHostValid(u) || u.Scheme != p.scheme {
		return "", &foreignHostError{host: u.Host}
	}
	tok, err := p.token(ctx)
	if err != nil {
		return "", &tokenError{err: err}
	}
	return tok, nil
}

func (p *tokenProvider) GetAllowedHostsValidator() *absauth.AllowedHostsValidator { return p.hosts }

// tokenError marks a failure of the TokenFunc.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return "access token: " + e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// foreignHostError refuses to send the token to a host other than BaseURL's.
type foreignHostError struct{ host string }

func (e *foreignHostError) Error() string {
	return "refusing to send the access token to " + e.host
}
