package oci

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/oracle/oci-go-sdk/v65/common"
	"github.com/oracle/oci-go-sdk/v65/core"
	"github.com/oracle/oci-go-sdk/v65/identity"

	"github.com/dstackgo/dstack/internal/backends"
)

// session is what every call of one backend config shares: the signing configuration, the
// tenancy and home region, the endpoint override and the SDK clients of each region.
type session struct {
	provider common.ConfigurationProvider
	tenancy  string
	// homeRegion is the creds' region, where identity reads go; home is the tenancy's home region
	// (from its region subscriptions), where identity writes must go.
	homeRegion string
	home       string
	// endpoint is DSTACK_OCI_API_URL parsed, nil for OCI's own regional endpoints.
	endpoint *url.URL
	retries  bool
	secrets  []string
	// fields are the config keys an authentication refusal names.
	fields [][]string

	mu       sync.Mutex
	computes map[string]*core.ComputeClient
	networks map[string]*core.VirtualNetworkClient
	idents   map[string]*identity.IdentityClient
}

// Retry bounds of the machine and offer calls: throttling (429) and 5xx other than capacity
// refusals are retried with jittered exponential backoff.
const (
	maxAttempts = 4
	minBackoff  = 200 * time.Millisecond
	maxBackoff  = 2 * time.Second
)

// credsError is a refusal of the credentials that names the keys to fix.
func credsError(msg string, fields ...[]string) error {
	return &backends.CredentialsError{Msg: msg, Fields: fields}
}

// expandHome resolves a leading ~ against the home directory of the server's user.
func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, strings.TrimPrefix(p, "~"))
		}
	}
	return p
}

// newSession builds the signing configuration of a backend config. retries false makes every
// call a single attempt (the credential check: one call, one verdict).
func newSession(cfg backends.Config, retries bool) (*session, error) {
	s := &session{retries: retries, computes: map[string]*core.ComputeClient{},
		networks: map[string]*core.VirtualNetworkClient{}, idents: map[string]*identity.IdentityClient{}}
	if u := backends.APIURL(typ, ""); u != "" {
		parsed, err := url.Parse(u)
		if err != nil || parsed.Host == "" || (parsed.Scheme != "http" && parsed.Scheme != "https") {
			return nil, fmt.Errorf("%s=%q is not an http(s) URL", backends.EnvAPIURL(typ), u)
		}
		s.endpoint = parsed
	}
	switch cfg.String("creds", "type") {
	case "client":
		if err := s.clientCreds(cfg); err != nil {
			return nil, err
		}
	case "default":
		if err := s.defaultCreds(cfg); err != nil {
			return nil, err
		}
	default:
		return nil, credsError("unknown credentials type "+cfg.String("creds", "type")+": use client or default", []string{"creds", "type"})
	}
	return s, nil
}

func (s *session) clientCreds(cfg backends.Config) error {
	user, tenancy := cfg.String("creds", "user"), cfg.String("creds", "tenancy")
	fingerprint, region := cfg.String("creds", "fingerprint"), cfg.String("creds", "region")
	keyFile, keyContent, pass := cfg.String("creds", "key_file"), cfg.String("creds", "key_content"), cfg.String("creds", "pass_phrase")
	keyField := []string{"creds", "key_content"}
	if keyFile != "" {
		keyField = []string{"creds", "key_file"}
	}
	s.secrets = []string{keyContent, pass}
	s.fields = [][]string{{"creds", "user"}, {"creds", "tenancy"}, {"creds", "fingerprint"}, keyField, {"creds", "region"}}
	for _, f := range []struct{ name, v string }{{"user", user}, {"tenancy", tenancy}, {"fingerprint", fingerprint}, {"region", region}} {
		if strings.TrimSpace(f.v) == "" {
			return credsError("creds."+f.name+" is empty: copy it from the OCI console (My profile → API keys → configuration file preview)", []string{"creds", f.name})
		}
	}
	if strings.ContainsAny(region, " \t\n") {
		return credsError(fmt.Sprintf("creds.region %q is not an OCI region name such as eu-frankfurt-1", region), []string{"creds", "region"})
	}
	pem := keyContent
	if keyFile != "" {
		path := expandHome(keyFile)
		b, err := os.ReadFile(path)
		if err != nil {
			return credsError(fmt.Sprintf("creds.key_file: cannot read the API signing key at %s: %v; give a path readable by the dstack server, or the PEM text as key_content",
				path, unwrapPathError(err)), keyField)
		}
		pem = string(b)
	}
	if strings.TrimSpace(pem) == "" {
		return credsError("one of creds.key_file (a path) or creds.key_content (the PEM text) must hold the API signing key", keyField)
	}
	var pp *string
	if pass != "" {
		pp = &pass
	}
	key, err := common.PrivateKeyFromBytes([]byte(pem), pp)
	if err != nil {
		where := "creds." + keyField[1]
		fields := [][]string{keyField}
		if pass != "" {
			fields = append(fields, []string{"creds", "pass_phrase"})
		}
		return &backends.CredentialsError{Msg: fmt.Sprintf("%s is not a usable PEM RSA private key (or creds.pass_phrase does not open it): %s",
			where, backends.RedactString(err.Error(), s.secrets)), Fields: fields}
	}
	s.tenancy, s.homeRegion = tenancy, region
	s.provider = cachedKey{common.NewRawConfigurationProvider(tenancy, user, region, fingerprint, pem, pp), key}
	return nil
}

// defaultConfigFile is the OCI config file `default` reads when `file` is not set.
const defaultConfigFile = "~/.oci/config"

func (s *session) defaultCreds(cfg backends.Config) error {
	file, profile := cfg.String("creds", "file"), cfg.String("creds", "profile")
	fileField := []string{"creds"}
	if file != "" {
		fileField = []string{"creds", "file"}
	} else {
		file = defaultConfigFile
	}
	if profile == "" {
		profile = "DEFAULT"
	}
	s.fields = [][]string{fileField}
	if cfg.String("creds", "profile") != "" {
		s.fields = append(s.fields, []string{"creds", "profile"})
	}
	path := expandHome(file)
	if _, err := os.Stat(path); err != nil {
		return credsError(fmt.Sprintf("the OCI config file %s cannot be read: %v; create it with `oci setup config` or give creds.file", path, unwrapPathError(err)), fileField)
	}
	p, err := common.ConfigurationProviderFromFileWithProfile(path, profile, "")
	if err != nil {
		return credsError(fmt.Sprintf("the OCI config file %s: %v", path, err), s.fields...)
	}
	tenancy, err := p.TenancyOCID()
	if err == nil {
		s.homeRegion, err = p.Region()
	}
	if err == nil {
		_, err = p.KeyID()
	}
	if err != nil {
		return credsError(fmt.Sprintf("profile %s of the OCI config file %s is incomplete: %v", profile, path, err), s.fields...)
	}
	key, err := p.PrivateRSAKey()
	if err != nil {
		return credsError(fmt.Sprintf("the API signing key of profile %s in %s does not load: %v", profile, path, err), s.fields...)
	}
	s.tenancy = tenancy
	s.provider = cachedKey{p, key}
	return nil
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// cachedKey keeps the parsed private key, which the SDK's providers parse again on every request.
type cachedKey struct {
	common.ConfigurationProvider
	key *rsa.PrivateKey
}

func (c cachedKey) PrivateRSAKey() (*rsa.PrivateKey, error) { return c.key, nil }

// dispatcher sends the SDK's requests. With DSTACK_OCI_API_URL set it connects to that URL and
// keeps the regional service host (iaas.<region>.oraclecloud.com, identity.<region>.oci...) as the
// Host header, which the request signature covers: the endpoint replaces where every service
// host is reached, as a proxy or the cloud simulator would, and the region still travels.
type dispatcher struct {
	client *http.Client
	target *url.URL
}

func (d dispatcher) Do(req *http.Request) (*http.Response, error) {
	if c, ok := req.Context().Value(callerCtxKey{}).(context.Context); ok {
		req = req.WithContext(c)
	}
	if d.target != nil {
		host := req.URL.Host
		req.URL.Scheme, req.URL.Host = d.target.Scheme, d.target.Host
		if p := strings.TrimRight(d.target.Path, "/"); p != "" {
			req.URL.Path = p + req.URL.Path
			req.URL.RawPath = ""
		}
		req.Host = host
	}
	return d.client.Do(req)
}

var httpClient = &http.Client{Transport: backends.ProbeTransport}

// The SDK's common.Retry returns on a cancelled context while its goroutine still writes the
// response (a data race in oci-go-sdk v65). So every SDK call gets a context that is never
// cancelled and carries the caller's; the dispatcher sends each HTTP request under the caller's
// context, so a cancelled call still ends at once, through the SDK's own goroutine.
type callerCtxKey struct{}

func sdkCtx(ctx context.Context) context.Context {
	return context.WithValue(context.WithoutCancel(ctx), callerCtxKey{}, ctx)
}

// setup makes a new SDK client dstack's: its User-Agent, the dispatcher, the retry policy (none
// for the credential check) and no circuit breaker (retries and capacity fall-over are decided here).
func (s *session) setup(c *common.BaseClient) {
	c.UserAgent = strings.TrimSpace(backends.UserAgent + " " + c.UserAgent)
	c.HTTPClient = dispatcher{client: httpClient, target: s.endpoint}
	c.Configuration.CircuitBreaker = nil
	if s.retries {
		p := retryPolicy()
		c.Configuration.RetryPolicy = &p
	} else {
		p := common.NoRetryPolicy()
		c.Configuration.RetryPolicy = &p
	}
}

func retryPolicy() common.RetryPolicy {
	return common.NewRetryPolicyWithOptions(
		common.WithMaximumNumberAttempts(maxAttempts),
		common.WithShouldRetryOperation(func(r common.OCIOperationResponse) bool {
			if r.Error == nil {
				return false
			}
			if errors.Is(r.Error, context.Canceled) || errors.Is(r.Error, context.DeadlineExceeded) {
				return false
			}
			se, ok := common.IsServiceError(r.Error)
			if !ok {
				return true // a transport error: the connection may come back
			}
			status := se.GetHTTPStatusCode()
			return (status == http.StatusTooManyRequests || status >= 500) && !isCapacity(r.Error)
		}),
		common.WithNextDuration(func(r common.OCIOperationResponse) time.Duration {
			d := minBackoff << (r.AttemptNumber - 1)
			if d > maxBackoff {
				d = maxBackoff
			}
			return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
		}),
	)
}

func (s *session) identityClient(region string) (*identity.IdentityClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.idents[region]; c != nil {
		return c, nil
	}
	c, err := identity.NewIdentityClientWithConfigurationProvider(s.provider)
	if err != nil {
		return nil, s.setupError(err)
	}
	c.SetRegion(region)
	s.setup(&c.BaseClient)
	s.idents[region] = &c
	return &c, nil
}

func (s *session) computeClient(region string) (*core.ComputeClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.computes[region]; c != nil {
		return c, nil
	}
	c, err := core.NewComputeClientWithConfigurationProvider(s.provider)
	if err != nil {
		return nil, s.setupError(err)
	}
	c.SetRegion(region)
	s.setup(&c.BaseClient)
	s.computes[region] = &c
	return &c, nil
}

func (s *session) networkClient(region string) (*core.VirtualNetworkClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.networks[region]; c != nil {
		return c, nil
	}
	c, err := core.NewVirtualNetworkClientWithConfigurationProvider(s.provider)
	if err != nil {
		return nil, s.setupError(err)
	}
	c.SetRegion(region)
	s.setup(&c.BaseClient)
	s.networks[region] = &c
	return &c, nil
}

// setupError is the SDK refusing the configuration while building a client (before any call).
func (s *session) setupError(err error) error {
	return &backends.CredentialsError{Msg: "the OCI SDK refuses the credentials: " + backends.RedactString(err.Error(), s.secrets), Fields: s.fields}
}

// host is the service endpoint of a region, as the SDK forms it.
func host(service, region string) string {
	if service == "identity" {
		return "identity." + region + ".oci." + common.StringToRegion(region).SecondLevelDomain()
	}
	return service + "." + region + "." + common.StringToRegion(region).SecondLevelDomain()
}

// shownURL names where a service of a region is reached, for messages.
func (s *session) shownURL(service, region string) string {
	if s.endpoint != nil {
		return backends.ShowURL(s.endpoint.String())
	}
	return "https://" + host(service, region)
}

// Error codes by what they mean to dstack.
var authCodes = map[string]bool{"NotAuthenticated": true, "SignUpRequired": true, "InvalidParameter.Signature": true}

// isCapacity reports an OCI refusal for lack of capacity: "Out of host capacity" (500
// InternalError), service limits (LimitExceeded, QuotaExceeded) and preemptible capacity.
func isCapacity(err error) bool {
	se, ok := common.IsServiceError(err)
	if !ok {
		return false
	}
	msg := strings.ToLower(se.GetMessage())
	switch se.GetCode() {
	case "LimitExceeded", "QuotaExceeded":
		return true
	case "InternalError":
		return strings.Contains(msg, "out of host capacity") || strings.Contains(msg, "out of capacity")
	}
	return false
}

func serviceCode(err error) (int, string) {
	if se, ok := common.IsServiceError(err); ok {
		return se.GetHTTPStatusCode(), se.GetCode()
	}
	return 0, ""
}

func errorMessage(err error) string {
	if se, ok := common.IsServiceError(err); ok {
		msg := fmt.Sprintf("HTTP %d %s: %s", se.GetHTTPStatusCode(), se.GetCode(), se.GetMessage())
		if id := se.GetOpcRequestID(); id != "" {
			msg += " (opc-request-id " + id + ")"
		}
		return msg
	}
	return err.Error()
}

// mapError turns an SDK error of a machine or offer call into dstack's errors: capacity refusals
// are a *backends.NoCapacityError, authentication refusals a *backends.CredentialsError, anything
// else an error naming the region and the operation, which keeps the context's error.
func (s *session) mapError(region, op string, err error) error {
	if err == nil {
		return nil
	}
	where := region
	if region == s.homeRegion {
		where = "home region" // the creds' region, kept out of messages like the other creds values
	}
	status, code := serviceCode(err)
	switch {
	case isCapacity(err):
		return &backends.NoCapacityError{Msg: fmt.Sprintf("OCI %s %s: %s", where, op, errorMessage(err))}
	case authCodes[code] || status == http.StatusUnauthorized:
		return &backends.CredentialsError{Msg: "OCI refused the request signature: " + backends.RedactString(errorMessage(err), s.secrets) + authHint, Fields: s.fields}
	case status != 0:
		// The SDK's own text repeats the endpoint and troubleshooting links; the code, message
		// and request id say it all.
		return fmt.Errorf("OCI %s %s: %s", where, op, backends.RedactString(errorMessage(err), s.secrets))
	case errors.Is(err, common.DeadlineExceededByBackoff):
		err = fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return fmt.Errorf("OCI %s %s at %s: %w", where, op, s.shownURL("iaas", region), backends.Redact(transportError(err), s.secrets))
}

// transportError drops the request URL of a transport error (its path and query name the
// tenancy and resources); messages name the endpoint instead.
func transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

const authHint = "; check creds.user, creds.tenancy, creds.fingerprint (the key's fingerprint in the console) and the API signing key"

// probeError turns an SDK error of the credential check into its verdict: an authentication
// refusal is a *backends.CredentialsError naming the signing keys; anything else (network,
// timeout, 5xx, throttling) is a *backends.ProviderError naming the endpoint.
func (s *session) probeError(service, region string, err error) error {
	status, code := serviceCode(err)
	if authCodes[code] || status == http.StatusUnauthorized {
		return &backends.CredentialsError{Msg: "OCI refused the request signature: " + backends.RedactString(errorMessage(err), s.secrets) + authHint, Fields: s.fields}
	}
	pe := &backends.ProviderError{Provider: "OCI", URL: s.shownURL(service, region), Status: status}
	if status == 0 {
		pe.Err = backends.Redact(transportError(err), s.secrets)
		return pe
	}
	if se, ok := common.IsServiceError(err); ok {
		pe.Msg = backends.RedactString(se.GetCode()+": "+se.GetMessage(), s.secrets)
	}
	return pe
}
