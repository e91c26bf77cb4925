package graphtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"time"
)

// Defaults present after NewServer.
const (
	DefaultTenantID     = "8f1c2a34-5b6d-4e7f-9a0b-1c2d3e4f5a6b"
	DefaultTenantDomain = "firma.example"
	DefaultClientID     = "3c5e7a91-2b4d-4f60-8e1a-9b0c2d4e6f81"
	DefaultClientSecret = "sim8Q~client.secret-value_0123456789abcdef"
	DefaultRedirectURI  = "http://localhost:8080/connect/callback"
	DefaultUser         = "anna.admin@firma.example"
	DefaultUserID       = "0d9b7c1e-3f2a-4b5c-8d6e-7f8091a2b3c4"
	DefaultPassword     = "Sim-Passw0rd!"
	DefaultMailbox      = "rechnungen@firma.example"
	// DefaultOtherUser is a user whose mailbox DefaultUser may not read.
	DefaultOtherUser = "buchhaltung@firma.example"
	DefaultGroupID   = "6a1b2c3d-4e5f-4a6b-9c7d-8e9f0a1b2c3d"
	DefaultGroupName = "mailbox-connect"
)

// Graph's resource identifiers.
const (
	graphResource   = "https://graph.microsoft.com"
	graphResourceID = "00000003-0000-0000-c000-000000000000"
)

// Tenant is a Microsoft Entra tenant.
type Tenant struct {
	ID          string // GUID
	Domain      string // e.g. firma.example
	DisplayName string
	// UserConsentDisabled: users may not consent to apps; only admin
	// consent lets them sign in to an app.
	UserConsentDisabled bool
}

// User is an account with a mailbox of its own.
type User struct {
	ID          string // object id (oid); generated if empty
	UPN         string
	DisplayName string
	Password    string
	TenantID    string // DefaultTenantID if empty
	Admin       bool   // may grant admin consent
}

// Mailbox is a mailbox; a user's own mailbox is added with the user.
type Mailbox struct {
	ID          string // object id; generated if empty
	Address     string
	DisplayName string
	Shared      bool
	TenantID    string // DefaultTenantID if empty
}

// App is an app registration.
type App struct {
	ClientID     string
	ClientSecret string // empty = public client
	DisplayName  string
	TenantID     string   // home tenant; apps are multi-tenant
	RedirectURIs []string // exact matches; loopback redirects match on any port
	RequirePKCE  bool     // authorize refuses requests without an S256 code_challenge
	GroupClaims  bool     // id_tokens carry the groups claim and, for admins, wids (groupMembershipClaims "All")
	// Roles are the application permissions granted with admin consent
	// (Mail.ReadWrite, User.Read.All if empty).
	Roles []string
	// Scopes are the configured delegated permissions admin consent covers
	// (User.Read, Mail.ReadWrite, Mail.ReadWrite.Shared if empty); users may
	// still consent to others dynamically.
	Scopes []string
}

// Group is a security group.
type Group struct {
	ID          string // GUID; generated if empty
	DisplayName string
	TenantID    string   // DefaultTenantID if empty
	Members     []string // UPNs
}

// Mail is a mail to deliver.
type Mail struct {
	From, FromName, Subject, Body string
	BodyHTML                      bool
	InternetMessageID             string // generated if empty
	ReceivedAt                    time.Time
	IsRead                        bool
	Folder                        string // well-known name, display name or id; inbox if empty
	Attachments                   []Attachment
	Categories                    []string
}

// Attachment is one attachment of a Mail. Content is stored once and never
// copied; don't modify it after Deliver.
type Attachment struct {
	Name, ContentType string
	Content           []byte
	Inline            bool
	ContentID         string
	Item              *Mail  // itemAttachment (an attached mail)
	ReferenceURL      string // referenceAttachment
}

// MessageState is a message as a test sees it.
type MessageState struct {
	ID                string // mutable id (changes on move)
	ImmutableID       string
	InternetMessageID string
	Subject           string
	IsRead            bool
	Categories        []string
	Folder            string // well-known name, or display name for other folders
	FolderID          string
}

// Server is the simulator. Its methods are safe for concurrent use: one
// lock, mu, guards the model (dir, mail, grants, tokens), the throttle
// and the faults; handlers run under it and answer after it (see respond).
type Server struct {
	// URL is the base URL, e.g. http://127.0.0.1:41234. It is empty for an
	// unstarted server; set it when serving Handler at a known address so
	// LoginURL and GraphURL work (links in answers always use the request's
	// Host).
	URL string

	hs   *httptest.Server
	keys signingKeys

	mu     sync.Mutex
	now    func() time.Time
	dir    directoryModel // tenants, users, apps, groups
	mail   mailModel      // mailboxes and delta sync states
	grants grantModel     // consent, mailbox permissions, access policies
	tokens tokenModel     // codes and refresh tokens issued
	lim    limits         // throttle and request counters
	faults faultSet       // injected faults, beside the model they break
	subs   subModel       // change notification subscriptions
	notify notifier       // their delivery, knobs beside the model
	hooks  testHooks
}

// signingKeys is the token signing key, made on first use.
type signingKeys struct {
	once sync.Once
	key  *rsa.PrivateKey
	cert []byte // DER, self-signed
	kid  string
}

type directoryModel struct {
	tenants map[string]*Tenant // by id
	users   map[string]*user   // by lower UPN
	apps    map[string]*App
	groups  map[string]*Group
}

type mailModel struct {
	mailboxes map[string]*mailbox   // by lower address
	syncs     map[string]*syncState // by delta or skip token
}

type grantModel struct {
	fullAccess map[string]map[string]bool // mailbox id -> user oid
	appPolicy  map[string]map[string]bool // client id -> mailbox id
	adminOK    map[string]bool            // tenant|client
	userOK     map[string]map[string]bool // tenant|client|oid -> scopes
	expired    map[string]bool            // client ids with expired secrets
}

type tokenModel struct {
	codes     map[string]*authCode
	refresh   map[string]*refreshToken
	revokedAt map[string]time.Time // user oid -> refresh tokens issued before are revoked
	tokenTTL  time.Duration
}

// testHooks let the package's tests await events inside a request.
type testHooks struct {
	// onHold is called (without the lock) when a request starts waiting on
	// an injected Delay; tests use it to know requests are in flight.
	onHold func()
	// onRelease is called (without the lock) when a request gives its
	// concurrency slot back, after its answer; tests await it where a
	// client gave up before the server noticed.
	onRelease func()
	// onPosted is called (without the lock) once a notification POST's
	// outcome is counted in NotificationStats.
	onPosted func()
}

type user struct {
	User
}

// NewServer returns a started server with the defaults, like httptest.NewServer.
func NewServer() *Server {
	s := NewUnstartedServer()
	s.hs = httptest.NewServer(s.Handler()) // listens on 127.0.0.1:0
	s.URL = s.hs.URL
	return s
}

// NewUnstartedServer returns a server with the defaults that does not
// listen; serve Handler yourself.
func NewUnstartedServer() *Server {
	s := &Server{
		now:  time.Now,
		dir:  directoryModel{tenants: map[string]*Tenant{}, users: map[string]*user{}, apps: map[string]*App{}, groups: map[string]*Group{}},
		mail: mailModel{mailboxes: map[string]*mailbox{}, syncs: map[string]*syncState{}},
		grants: grantModel{fullAccess: map[string]map[string]bool{}, appPolicy: map[string]map[string]bool{},
			adminOK: map[string]bool{}, userOK: map[string]map[string]bool{}, expired: map[string]bool{}},
		tokens: tokenModel{codes: map[string]*authCode{}, refresh: map[string]*refreshToken{}, revokedAt: map[string]time.Time{}, tokenTTL: time.Hour},
		lim: limits{limiters: map[string]*limiter{}, inFlight: map[string]int{},
			throttle: Throttle{MaxConcurrent: 4, Requests: 10000, Window: 10 * time.Minute}},
		subs: subModel{subs: map[string]*subscription{}, writes: map[string][]time.Time{}},
	}
	s.notify.init()
	s.lim.counters = newCounters()
	s.AddTenant(Tenant{ID: DefaultTenantID, Domain: DefaultTenantDomain, DisplayName: "Firma GmbH"})
	s.AddApp(App{
		ClientID: DefaultClientID, ClientSecret: DefaultClientSecret, DisplayName: "mailgate",
		TenantID: DefaultTenantID, RedirectURIs: []string{DefaultRedirectURI}, RequirePKCE: true, GroupClaims: true,
	})
	s.AddUser(User{ID: DefaultUserID, UPN: DefaultUser, DisplayName: "Anna Admin", Password: DefaultPassword, Admin: true})
	s.AddUser(User{UPN: DefaultOtherUser, DisplayName: "Buchhaltung", Password: DefaultPassword})
	s.AddMailbox(Mailbox{Address: DefaultMailbox, DisplayName: "Rechnungen", Shared: true})
	s.GrantFullAccess(DefaultUser, DefaultMailbox)
	s.AddGroup(Group{ID: DefaultGroupID, DisplayName: DefaultGroupName, Members: []string{DefaultUser}})
	s.GrantAdminConsent(DefaultTenantID, DefaultClientID)
	return s
}

// LoginURL is the identity platform base (what https://login.microsoftonline.com is).
func (s *Server) LoginURL() string { return s.URL }

// GraphURL is the Graph base (what https://graph.microsoft.com/v1.0 is).
func (s *Server) GraphURL() string { return s.URL + "/v1.0" }

// Close stops a started server and the delivery of notifications
// (of an unstarted one too).
func (s *Server) Close() {
	s.stopNotifier()
	if s.hs != nil {
		s.hs.Close()
	}
}

// SetNow replaces the clock (token expiry, throttling windows, timestamps).
func (s *Server) SetNow(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// SetTokenLifetime sets the access token lifetime (default 1h).
func (s *Server) SetTokenLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens.tokenTTL = d
}

// signingKey generates the RSA key on first use, so servers that never
// issue a token stay cheap.
func (s *Server) signingKey() (*rsa.PrivateKey, string) {
	s.keys.once.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(fmt.Sprintf("graphtest: generate key: %v", err))
		}
		// Like Microsoft's keys: a self-signed certificate whose SHA-1
		// thumbprint is both kid and x5t (go-jose insists on 20 bytes).
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "accounts.accesscontrol.windows.net"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(5 * 365 * 24 * time.Hour),
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		if err != nil {
			panic(fmt.Sprintf("graphtest: certificate: %v", err))
		}
		sum := sha1.Sum(der)
		s.keys.key, s.keys.cert = k, der
		s.keys.kid = base64.RawURLEncoding.EncodeToString(sum[:])
	})
	return s.keys.key, s.keys.kid
}

// AddTenant adds or replaces a tenant.
func (s *Server) AddTenant(t Tenant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.ID == "" {
		t.ID = newGUID()
	}
	s.dir.tenants[t.ID] = &t
}

// AddUser adds or replaces a user and gives it a mailbox of its own.
func (s *Server) AddUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.ID == "" {
		u.ID = newGUID()
	}
	if u.TenantID == "" {
		u.TenantID = DefaultTenantID
	}
	if u.DisplayName == "" {
		u.DisplayName = u.UPN
	}
	key := strings.ToLower(u.UPN)
	s.dir.users[key] = &user{User: u}
	if s.mailboxByAddress(u.UPN) == nil {
		s.addMailbox(Mailbox{ID: u.ID, Address: u.UPN, DisplayName: u.DisplayName, TenantID: u.TenantID})
	}
}

// AddMailbox adds a mailbox (typically a shared one).
func (s *Server) AddMailbox(m Mailbox) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.mailboxByAddress(m.Address); old != nil {
		return
	}
	s.addMailbox(m)
}

// AddApp adds or replaces an app registration.
func (s *Server) AddApp(a App) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.TenantID == "" {
		a.TenantID = DefaultTenantID
	}
	if len(a.Roles) == 0 {
		a.Roles = []string{"Mail.ReadWrite", "User.Read.All"}
	}
	if len(a.Scopes) == 0 {
		a.Scopes = []string{"User.Read", "Mail.ReadWrite", "Mail.ReadWrite.Shared"}
	}
	s.dir.apps[a.ClientID] = &a
	delete(s.grants.expired, a.ClientID)
}

// AddGroup adds or replaces a group.
func (s *Server) AddGroup(g Group) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g.ID == "" {
		g.ID = newGUID()
	}
	if g.TenantID == "" {
		g.TenantID = DefaultTenantID
	}
	s.dir.groups[g.ID] = &g
}

// GrantFullAccess gives a user full access to a mailbox.
func (s *Server) GrantFullAccess(userUPN, mailbox string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, mb := s.dir.users[strings.ToLower(userUPN)], s.mailboxByAddress(mailbox)
	if u == nil || mb == nil {
		return
	}
	if s.grants.fullAccess[mb.ID] == nil {
		s.grants.fullAccess[mb.ID] = map[string]bool{}
	}
	s.grants.fullAccess[mb.ID][u.ID] = true
}

// AllowAppMailbox adds a mailbox to the app's application access policy:
// once an app has a policy, app-only tokens read only the mailboxes in it.
func (s *Server) AllowAppMailbox(clientID, mailbox string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.mailboxByAddress(mailbox)
	if mb == nil {
		return
	}
	if s.grants.appPolicy[clientID] == nil {
		s.grants.appPolicy[clientID] = map[string]bool{}
	}
	s.grants.appPolicy[clientID][mb.ID] = true
}

// GrantAdminConsent consents to an app for a whole tenant (delegated
// scopes and application roles).
func (s *Server) GrantAdminConsent(tenantID, clientID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.grants.adminOK[tenantID+"|"+clientID] = true
}

// RevokeRefreshTokens revokes every refresh token of the user issued so far
// (like Revoke-MgUserSignInSession); access tokens stay valid until expiry.
func (s *Server) RevokeRefreshTokens(upn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.dir.users[strings.ToLower(upn)]; u != nil {
		s.tokens.revokedAt[u.ID] = s.now()
	}
}

// ExpireClientSecret makes the app's secret expired: every confidential
// client call answers invalid_client AADSTS7000222.
func (s *Server) ExpireClientSecret(clientID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.grants.expired[clientID] = true
}

// ResetDelta invalidates every outstanding delta and next link of the
// mailbox: following one answers 410 Gone SyncStateNotFound.
func (s *Server) ResetDelta(mailbox string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if mb := s.mailboxByAddress(mailbox); mb != nil {
		mb.epoch++
	}
}

// Deliver puts a mail into the mailbox, into m.Folder or the inbox.
func (s *Server) Deliver(mailbox string, m Mail) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.mailboxByAddress(mailbox)
	if mb == nil {
		return "", fmt.Errorf("graphtest: deliver: no mailbox %q", mailbox)
	}
	name := m.Folder
	if name == "" {
		name = "inbox"
	}
	f := mb.folder(name)
	if f == nil {
		return "", fmt.Errorf("graphtest: deliver to %s: no folder %q", mailbox, name)
	}
	msg := mb.deliver(f, m, s.now())
	return msg.id, nil
}

// Messages lists the messages of a folder (all folders if folder is empty),
// oldest first.
func (s *Server) Messages(mailbox, folderName string) []MessageState {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.mailboxByAddress(mailbox)
	if mb == nil {
		return nil
	}
	var f *folder
	if folderName != "" {
		if f = mb.folder(folderName); f == nil {
			return nil
		}
	}
	var out []MessageState
	for _, m := range mb.sorted() {
		if f != nil && m.folderID != f.id {
			continue
		}
		mf := mb.folders[m.folderID]
		name := mf.wellKnown
		if name == "" {
			name = mf.name
		}
		out = append(out, MessageState{
			ID: m.id, ImmutableID: m.immutableID, InternetMessageID: m.mail.InternetMessageID,
			Subject: m.mail.Subject, IsRead: m.isRead, Categories: append([]string(nil), m.categories...),
			Folder: name, FolderID: mf.id,
		})
	}
	return out
}

// MoveMessage moves a message as a person would; it gets a new id.
func (s *Server) MoveMessage(mailbox, messageID, folderName string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.mailboxByAddress(mailbox)
	if mb == nil {
		return "", fmt.Errorf("graphtest: move: no mailbox %q", mailbox)
	}
	m := mb.message(messageID)
	if m == nil {
		return "", fmt.Errorf("graphtest: move: no message %q in %s", messageID, mailbox)
	}
	f := mb.folder(folderName)
	if f == nil {
		return "", fmt.Errorf("graphtest: move: no folder %q in %s", folderName, mailbox)
	}
	mb.move(m, f)
	return m.id, nil
}

// DeleteMessage deletes a message as a person would.
func (s *Server) DeleteMessage(mailbox, messageID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.mailboxByAddress(mailbox)
	if mb == nil {
		return fmt.Errorf("graphtest: delete: no mailbox %q", mailbox)
	}
	m := mb.message(messageID)
	if m == nil {
		return errors.New("graphtest: delete: no message " + messageID)
	}
	mb.remove(m)
	return nil
}

// mailboxByAddress finds a mailbox by address or id; s.mu held.
func (s *Server) mailboxByAddress(key string) *mailbox {
	if mb := s.mail.mailboxes[strings.ToLower(key)]; mb != nil {
		return mb
	}
	for _, mb := range s.mail.mailboxes {
		if strings.EqualFold(mb.ID, key) {
			return mb
		}
	}
	return nil
}

func (s *Server) addMailbox(m Mailbox) {
	if m.ID == "" {
		m.ID = newGUID()
	}
	if m.TenantID == "" {
		m.TenantID = DefaultTenantID
	}
	if m.DisplayName == "" {
		m.DisplayName = m.Address
	}
	mb := newMailbox(m)
	mb.onChange = func(ch mailChange) { s.enqueueChange(mb, ch) }
	s.mail.mailboxes[strings.ToLower(m.Address)] = mb
}

// userByID finds a user by oid or UPN; s.mu held.
func (s *Server) userByID(key string) *user {
	if u := s.dir.users[strings.ToLower(key)]; u != nil {
		return u
	}
	for _, u := range s.dir.users {
		if strings.EqualFold(u.ID, key) {
			return u
		}
	}
	return nil
}

// groupsOf lists the group ids of a user, sorted; s.mu held.
func (s *Server) groupsOf(u *user) []*Group {
	var out []*Group
	for _, g := range s.dir.groups {
		for _, m := range g.Members {
			if strings.EqualFold(m, u.UPN) {
				out = append(out, g)
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// randToken returns n random bytes, base64url without padding.
func randToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// exchangeID looks like an Exchange item id: base64url with padding, so
// it carries '-', '_' and '=' that clients must percent-encode.
func exchangeID(prefix string) string {
	b := make([]byte, 64)
	_, _ = rand.Read(b)
	return prefix + base64.URLEncoding.EncodeToString(b)
}
