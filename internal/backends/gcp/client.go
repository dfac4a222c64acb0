package gcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/compute/v1"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	tpuapi "google.golang.org/api/tpu/v2"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

// scope is the OAuth scope of every call: Compute Engine reads and writes.
const scope = compute.CloudPlatformScope

// session is what every call of one backend config shares: the credentials, their access token,
// the project, the Compute Engine client and the Cloud TPU client.
type session struct {
	// key is the credentials JSON (the service account's key, or the ADC file); nil when the
	// metadata server gives the tokens (meta).
	key      []byte
	keyType  google.CredentialsType
	meta     oauth2.TokenSource
	tokenURI string
	project  string
	// endpoint is DSTACK_GCP_API_URL, "" for Google's endpoints.
	endpoint string
	secrets  []string
	// fields are the config keys a credentials refusal names.
	fields  [][]string
	retries bool

	mu  sync.Mutex
	tok *oauth2.Token

	svc *compute.Service
	tpu *tpuapi.Service
}

// keyFile is what the session reads of a credentials JSON.
type keyFile struct {
	Type           string `json:"type"`
	ProjectID      string `json:"project_id"`
	QuotaProjectID string `json:"quota_project_id"`
	ClientEmail    string `json:"client_email"`
	PrivateKey     string `json:"private_key"`
	TokenURI       string `json:"token_uri"`
	ClientSecret   string `json:"client_secret"`
	RefreshToken   string `json:"refresh_token"`
}

// newSession builds the session of a backend config. retries false makes every call a single
// attempt (the credential check: one call, one verdict).
func newSession(ctx context.Context, cfg backends.Config, retries bool) (*session, error) {
	s := &session{endpoint: backends.APIURL(typ, ""), retries: retries}
	var kf keyFile
	switch cfg.String("creds", "type") {
	case "service_account":
		s.fields = [][]string{{"creds", "data"}}
		data, filename := cfg.String("creds", "data"), cfg.String("creds", "filename")
		if filename != "" {
			// The key came from the file: fixing it means fixing the file.
			s.fields = append(s.fields, []string{"creds", "filename"})
		}
		if data == "" && filename != "" {
			b, err := os.ReadFile(schema.ExpandHome(filename))
			if err != nil {
				return nil, &backends.CredentialsError{Msg: fmt.Sprintf("cannot read the service account key file %s: %v", filename, unwrapPath(err)),
					Fields: [][]string{{"creds", "filename"}}}
			}
			data = string(b)
		}
		if strings.TrimSpace(data) == "" {
			return nil, &backends.CredentialsError{Msg: "the service account key is empty; give its JSON in creds.data or its file in creds.filename", Fields: s.fields}
		}
		s.secrets = []string{data}
		if err := json.Unmarshal([]byte(data), &kf); err != nil {
			return nil, &backends.CredentialsError{Msg: "the service account key is not JSON (" + jsonProblem(err) +
				"); give the JSON key file the IAM console downloads", Fields: s.fields}
		}
		if kf.Type != "service_account" || kf.ClientEmail == "" || kf.PrivateKey == "" {
			return nil, &backends.CredentialsError{Msg: fmt.Sprintf("the key is not a service account key (type %q; client_email and private_key are required); create one with `gcloud iam service-accounts keys create`", kf.Type),
				Fields: s.fields}
		}
		s.key, s.keyType = []byte(data), google.ServiceAccount
	case "default":
		s.fields = [][]string{{"creds"}}
		if err := s.defaultCredentials(ctx, &kf); err != nil {
			return nil, err
		}
	default:
		return nil, &backends.CredentialsError{Msg: "unknown credentials type " + cfg.String("creds", "type"), Fields: [][]string{{"creds", "type"}}}
	}
	if kf.PrivateKey != "" {
		s.secrets = append(s.secrets, kf.PrivateKey)
	}
	if kf.ClientSecret != "" {
		s.secrets = append(s.secrets, kf.ClientSecret, kf.RefreshToken)
	}
	s.tokenURI = kf.TokenURI
	if s.tokenURI == "" {
		s.tokenURI = google.Endpoint.TokenURL
	}
	s.project = cfg.String("project_id")
	if s.project == "" {
		s.project = kf.ProjectID
	}
	if s.project == "" {
		s.project = kf.QuotaProjectID
	}
	if s.project == "" {
		return nil, &backends.CredentialsError{Msg: "project_id is not set and the credentials name no project; set project_id (see `gcloud projects list`)",
			Fields: [][]string{{"project_id"}}}
	}
	hc := &http.Client{Transport: &authTransport{s: s, base: userAgentTransport{http.DefaultTransport}}}
	endpoint := "https://compute.googleapis.com/compute/v1/"
	if s.endpoint != "" {
		endpoint = s.endpoint + "/compute/v1/"
	}
	svc, err := compute.NewService(ctx, option.WithHTTPClient(hc), option.WithEndpoint(endpoint))
	if err != nil {
		return nil, fmt.Errorf("GCP: the Compute Engine client: %w", err)
	}
	s.svc = svc
	// The Cloud TPU API v2 (tpu.go): same credentials, at DSTACK_GCP_API_URL + / when set.
	tpuURL := tpuEndpoint + "/"
	if s.endpoint != "" {
		tpuURL = s.endpoint + "/"
	}
	if s.tpu, err = tpuapi.NewService(ctx, option.WithHTTPClient(hc), option.WithEndpoint(tpuURL)); err != nil {
		return nil, fmt.Errorf("GCP: the Cloud TPU client: %w", err)
	}
	return s, nil
}

// defaultCredentials finds Application Default Credentials as Google's libraries do:
// GOOGLE_APPLICATION_CREDENTIALS, then gcloud's well-known file, then the metadata server.
func (s *session) defaultCredentials(ctx context.Context, kf *keyFile) error {
	file := os.Getenv("GOOGLE_APPLICATION_CREDENTIALS")
	from := "GOOGLE_APPLICATION_CREDENTIALS (" + file + ")"
	if file == "" {
		if dir, err := os.UserConfigDir(); err == nil {
			if f := filepath.Join(dir, "gcloud", "application_default_credentials.json"); fileExists(f) {
				file, from = f, f
			}
		}
	}
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return &backends.CredentialsError{Msg: fmt.Sprintf("Failed to find default credentials: cannot read %s: %v", from, unwrapPath(err)), Fields: s.fields}
		}
		s.secrets = []string{string(data)}
		if err := json.Unmarshal(data, kf); err != nil {
			return &backends.CredentialsError{Msg: fmt.Sprintf("Failed to find default credentials: %s is not JSON (%s)", from, jsonProblem(err)), Fields: s.fields}
		}
		switch kf.Type {
		case "service_account":
			s.keyType = google.ServiceAccount
		case "authorized_user":
			s.keyType = google.AuthorizedUser
		default:
			return &backends.CredentialsError{Msg: fmt.Sprintf("Failed to find default credentials: %s holds credentials of type %q; use a service account key or `gcloud auth application-default login`", from, kf.Type),
				Fields: s.fields}
		}
		s.key = data
		return nil
	}
	creds, err := google.FindDefaultCredentials(ctx, scope)
	if err != nil {
		return &backends.CredentialsError{Msg: "Failed to find default credentials: set GOOGLE_APPLICATION_CREDENTIALS to a key file, run `gcloud auth application-default login`, or run on Google Cloud", Fields: s.fields}
	}
	s.meta = creds.TokenSource
	kf.ProjectID = creds.ProjectID
	return nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// jsonProblem says where a JSON document breaks without quoting it (it holds a private key).
func jsonProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %s has the wrong type", te.Field)
	}
	return "it does not decode"
}

// tokenError is a failed access-token exchange, for the error mapping.
type tokenError struct {
	uri    string
	status int    // HTTP status of the token endpoint, 0 when it did not answer
	code   string // OAuth error code, e.g. invalid_grant
	msg    string
	err    error
}

func (e *tokenError) Error() string {
	if e.status == 0 {
		return fmt.Sprintf("the OAuth token exchange at %s failed: %s", backends.ShowURL(e.uri), e.msg)
	}
	return fmt.Sprintf("the OAuth token endpoint %s answered %d: %s", backends.ShowURL(e.uri), e.status, e.msg)
}

func (e *tokenError) Unwrap() error { return e.err }

// refused reports whether the token endpoint refused the credentials themselves.
func (e *tokenError) refused() bool {
	switch e.code {
	case "invalid_grant", "invalid_client", "unauthorized_client", "invalid_scope", "access_denied":
		return true
	}
	return e.status == http.StatusUnauthorized || e.status == http.StatusForbidden
}

// token returns a valid access token, exchanging the credentials for one within ctx when the last
// is about to expire. The exchange runs on a client bound to ctx, so a hung token endpoint costs
// the caller its deadline, no more.
func (s *session) token(ctx context.Context) (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok != nil && s.tok.AccessToken != "" && (s.tok.Expiry.IsZero() || time.Until(s.tok.Expiry) > time.Minute) {
		return s.tok, nil
	}
	var tok *oauth2.Token
	var err error
	if s.meta != nil {
		tok, err = tokenWithin(ctx, s.meta)
	} else {
		hc := &http.Client{Transport: boundTransport{ctx: ctx, base: userAgentTransport{http.DefaultTransport}}}
		var creds *google.Credentials
		creds, err = google.CredentialsFromJSONWithType(context.WithValue(ctx, oauth2.HTTPClient, hc), s.key, s.keyType, scope)
		if err == nil {
			tok, err = creds.TokenSource.Token()
		}
	}
	if err != nil {
		return nil, s.tokenFailure(ctx, err)
	}
	s.tok = tok
	return tok, nil
}

// tokenWithin runs a token source that takes no context (the metadata server's) within ctx.
func tokenWithin(ctx context.Context, ts oauth2.TokenSource) (*oauth2.Token, error) {
	type result struct {
		tok *oauth2.Token
		err error
	}
	ch := make(chan result, 1)
	go func() {
		tok, err := ts.Token()
		ch <- result{tok, err}
	}()
	select {
	case r := <-ch:
		return r.tok, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *session) tokenFailure(ctx context.Context, err error) error {
	te := &tokenError{uri: s.tokenURI}
	var re *oauth2.RetrieveError
	switch {
	case errors.As(err, &re):
		te.code = re.ErrorCode
		if te.code == "" {
			// oauth2's JWT exchange leaves the RFC 6749 error in the body.
			var body struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			if json.Unmarshal(re.Body, &body) == nil {
				te.code, re.ErrorDescription = body.Error, body.Description
			}
		}
		if re.Response != nil {
			te.status = re.Response.StatusCode
		}
		te.msg = te.code
		if re.ErrorDescription != "" {
			te.msg += ": " + re.ErrorDescription
		}
		if te.msg == "" {
			te.msg = backends.ProviderMessage(re.Body, s.secrets...)
		}
	case ctx.Err() != nil:
		te.msg, te.err = ctx.Err().Error(), ctx.Err()
	default:
		te.msg, te.err = backends.RedactString(err.Error(), s.secrets), backends.Redact(err, s.secrets)
	}
	te.msg = backends.RedactString(te.msg, s.secrets)
	return te
}

// authTransport puts the session's access token on each call.
type authTransport struct {
	s    *session
	base http.RoundTripper
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := t.s.token(req.Context())
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	return t.base.RoundTrip(r)
}

// userAgentTransport puts dstack first in the User-Agent of every request.
type userAgentTransport struct{ base http.RoundTripper }

func (t userAgentTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("User-Agent", strings.TrimSpace(backends.UserAgent+" "+req.Header.Get("User-Agent")))
	return t.base.RoundTrip(r)
}

// boundTransport sends every request within ctx (oauth2's JWT exchange uses no context of its own).
type boundTransport struct {
	ctx  context.Context
	base http.RoundTripper
}

func (t boundTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.base.RoundTrip(req.WithContext(t.ctx))
}

// --- errors ---

// Operation error codes by what they mean to dstack: the zone has no capacity (or the project no
// quota) for the machine, so the next zone, then the next offer, may.
var capacityCodes = map[string]bool{
	"ZONE_RESOURCE_POOL_EXHAUSTED":              true,
	"ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS": true,
	"RESOURCE_POOL_EXHAUSTED":                   true,
	"QUOTA_EXCEEDED":                            true,
	"STOCKOUT":                                  true,
	"RESOURCE_NOT_AVAILABLE":                    true,
}

// apiError is the googleapi error of a call, or nil.
func apiError(err error) *googleapi.Error {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge
	}
	return nil
}

func reasonOf(ge *googleapi.Error) string {
	if ge != nil && len(ge.Errors) > 0 {
		return ge.Errors[0].Reason
	}
	return ""
}

func isNotFound(err error) bool {
	ge := apiError(err)
	return ge != nil && ge.Code == http.StatusNotFound
}

// isCapacity reports a synchronous refusal for want of quota or capacity.
func isCapacity(err error) bool {
	ge := apiError(err)
	if ge == nil {
		return false
	}
	switch reasonOf(ge) {
	case "quotaExceeded", "resourceExhausted", "ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS":
		return true
	}
	return strings.Contains(ge.Message, "does not have enough resources available")
}

// retryable reports a failure another attempt may not meet: throttling, 5xx, a token endpoint
// that failed without refusing the credentials, a dropped connection.
func retryable(err error) bool {
	var te *tokenError
	if errors.As(err, &te) {
		switch {
		case te.refused():
			return false
		case te.status == 0:
			return !errors.Is(te.err, context.DeadlineExceeded) && !errors.Is(te.err, context.Canceled)
		}
		return te.status == 429 || te.status >= 500
	}
	if ge := apiError(err); ge != nil {
		switch reasonOf(ge) {
		case "rateLimitExceeded", "userRateLimitExceeded", "backendError", "internalError":
			return true
		}
		return ge.Code == 429 || ge.Code >= 500
	}
	var ne net.Error
	return errors.As(err, &ne) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
}

// Retry bounds of the machine and offer calls.
const (
	maxAttempts = 4
	baseBackoff = 250 * time.Millisecond
	maxBackoff  = 4 * time.Second
)

// do runs one call, retried with jittered exponential backoff while it fails retryably (when the
// session retries at all) and ctx allows.
func (s *session) do(ctx context.Context, call func() error) error {
	attempts := 1
	if s.retries {
		attempts = maxAttempts
	}
	var err error
	for i := 0; i < attempts; i++ {
		if err = call(); err == nil || !retryable(err) || i == attempts-1 {
			return err
		}
		d := min(baseBackoff<<i, maxBackoff)
		d = d/2 + rand.N(d/2+1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
	return err
}

// shownURL names the Compute Engine endpoint in messages.
func (s *session) shownURL() string {
	if s.endpoint != "" {
		return backends.ShowURL(s.endpoint)
	}
	return "https://compute.googleapis.com"
}

// mapError turns an error of a machine, volume or offer call into dstack's errors: a refused token
// or 401 is a *backends.CredentialsError; anything else says what failed where.
func (s *session) mapError(what string, err error) error {
	if err == nil {
		return nil
	}
	var te *tokenError
	if errors.As(err, &te) {
		if te.refused() {
			return &backends.CredentialsError{Msg: "Google refused the credentials: " + te.msg, Fields: s.fields}
		}
		return fmt.Errorf("GCP %s: %w", what, te)
	}
	if ge := apiError(err); ge != nil {
		if ge.Code == http.StatusUnauthorized {
			return &backends.CredentialsError{Msg: "Google refused the access token: " + backends.RedactString(ge.Message, s.secrets), Fields: s.fields}
		}
		return fmt.Errorf("GCP %s at %s: %w", what, s.shownURL(), backends.Redact(err, s.secrets))
	}
	return fmt.Errorf("GCP %s: %w", what, backends.Redact(err, s.secrets))
}

// probeError turns an error of the credential check into its verdict.
func (s *session) probeError(err error) error {
	var te *tokenError
	if errors.As(err, &te) {
		if te.refused() {
			return &backends.CredentialsError{Msg: "Google refused the credentials: " + te.msg, Fields: s.fields}
		}
		pe := &backends.ProviderError{Provider: provider, URL: backends.ShowURL(te.uri), Status: te.status, Msg: te.msg}
		if te.status == 0 {
			pe.Msg, pe.Err = "", errOr(te.err, errors.New(te.msg))
		}
		return pe
	}
	if ge := apiError(err); ge != nil {
		msg := backends.RedactString(ge.Message, s.secrets)
		switch {
		case ge.Code == http.StatusUnauthorized:
			return &backends.CredentialsError{Msg: "Google refused the access token: " + msg, Fields: s.fields}
		case ge.Code == http.StatusNotFound:
			return &backends.CredentialsError{Msg: fmt.Sprintf("project_id %s not found", s.project), Fields: [][]string{{"project_id"}}}
		case ge.Code == http.StatusForbidden && reasonOf(ge) != "rateLimitExceeded" && reasonOf(ge) != "userRateLimitExceeded":
			return &backends.CredentialsError{Msg: "Insufficient permissions: " + msg, Fields: s.fields}
		}
		return &backends.ProviderError{Provider: provider, URL: s.shownURL(), Status: ge.Code, Msg: msg}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &backends.ProviderError{Provider: provider, URL: s.shownURL(), Err: backends.Redact(err, s.secrets)}
}

func errOr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}
