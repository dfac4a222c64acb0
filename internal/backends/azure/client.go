package azure

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v7"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armsubscriptions"

	"github.com/dstackgo/dstack/internal/backends"
)

// session is what every call of one backend config shares: the credential (whose token cache
// spares a token request per call), the clients and the endpoints.
type session struct {
	sub string
	// arm and aad are the Resource Manager endpoint and the authority host; both are
	// DSTACK_AZURE_API_URL when it is set.
	arm, aad string
	cred     azcore.TokenCredential
	opts     *arm.ClientOptions
	secrets  []string
	// fields are the config keys a refusal of the credentials names, by what was refused.
	fields credFields

	vms     *armcompute.VirtualMachinesClient
	skus    *armcompute.ResourceSKUsClient
	disks   *armcompute.DisksClient
	groups  *armresources.ResourceGroupsClient
	generic *armresources.Client
	subs    *armsubscriptions.Client
	vnets   *armnetwork.VirtualNetworksClient
	nsgs    *armnetwork.SecurityGroupsClient
	pips    *armnetwork.PublicIPAddressesClient
	nics    *armnetwork.InterfacesClient
}

// credFields name the keys to fix when AAD refuses the tenant, the client id or the secret.
type credFields struct{ tenant, client, secret, all []string }

// Retry bounds of the machine and offer calls: throttling (429, honouring Retry-After) and 5xx are
// retried by azcore's retry policy with exponential backoff.
const (
	maxRetries    = 3
	retryDelay    = 250 * time.Millisecond
	maxRetryDelay = 4 * time.Second
)

// audience is Azure Resource Manager's token audience (the scope is audience + "/.default"); it
// stays Azure's own when DSTACK_AZURE_API_URL moves the endpoint.
const audience = "https://management.core.windows.net/"

// newSession builds the credential and clients of a backend config. retries false makes every
// call a single attempt (the credential check: one call, one verdict).
func newSession(cfg backends.Config, retries bool) (*session, error) {
	endpoint := backends.APIURL(typ, DefaultEndpoint)
	s := &session{sub: cfg.String("subscription_id"), arm: endpoint, aad: DefaultAuthority}
	if endpoint != DefaultEndpoint {
		s.aad = endpoint + "/"
	}
	if u, err := url.Parse(endpoint); err != nil || u.Scheme != "https" || u.Host == "" {
		// azidentity and the ARM bearer-token policy send credentials over TLS only.
		return nil, &backends.ProviderError{Provider: provider, URL: backends.ShowURL(endpoint),
			Err: fmt.Errorf("%s must be an https URL: Azure sends tokens and secrets over TLS only", backends.EnvAPIURL(typ))}
	}
	transport, err := newTransport()
	if err != nil {
		return nil, &backends.ProviderError{Provider: provider, URL: backends.ShowURL(endpoint), Err: err}
	}
	co := policy.ClientOptions{
		Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: s.aad, Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Endpoint: s.arm, Audience: audience}}},
		Transport: transport,
		Telemetry: policy.TelemetryOptions{ApplicationID: backends.UserAgent},
		Retry:     policy.RetryOptions{MaxRetries: maxRetries, RetryDelay: retryDelay, MaxRetryDelay: maxRetryDelay},
	}
	if !retries {
		co.Retry = policy.RetryOptions{MaxRetries: -1}
	}
	tenant := cfg.String("tenant_id")
	s.fields.tenant = []string{"tenant_id"}
	switch cfg.String("creds", "type") {
	case "client":
		if t := cfg.String("creds", "tenant_id"); t != "" {
			tenant, s.fields.tenant = t, []string{"creds", "tenant_id"}
		}
		id, secret := cfg.String("creds", "client_id"), cfg.String("creds", "client_secret")
		s.secrets = []string{id, secret}
		s.fields.client, s.fields.secret = []string{"creds", "client_id"}, []string{"creds", "client_secret"}
		s.fields.all = []string{"creds"}
		if id == "" || secret == "" {
			return nil, &backends.CredentialsError{Msg: "a client_id and a client_secret are required",
				Fields: [][]string{s.fields.client, s.fields.secret}}
		}
		// Instance discovery would ask login.microsoft.com about a non-public authority; the
		// public one is trusted without it, so this changes nothing against Azure itself.
		cred, err := azidentity.NewClientSecretCredential(tenant, id, secret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true})
		if err != nil {
			return nil, s.credentialError(err)
		}
		s.cred = cred
	case "default":
		s.fields.client, s.fields.secret, s.fields.all = []string{"creds"}, []string{"creds"}, []string{"creds"}
		cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: co,
			DisableInstanceDiscovery: true, TenantID: tenant})
		if err != nil {
			return nil, &backends.CredentialsError{Msg: "the default Azure credential chain cannot start: " +
				backends.RedactString(err.Error(), s.secrets), Fields: [][]string{{"creds"}}}
		}
		s.cred = cred
	default:
		return nil, &backends.CredentialsError{Msg: "unknown credentials type " + cfg.String("creds", "type"), Fields: [][]string{{"creds", "type"}}}
	}
	s.opts = &arm.ClientOptions{ClientOptions: co}
	// The constructors fail only on a nil credential or options that do not parse; both are ours.
	must := func(err error) {
		if err != nil {
			panic("azure: building an SDK client: " + err.Error())
		}
	}
	var e error
	s.vms, e = armcompute.NewVirtualMachinesClient(s.sub, s.cred, s.opts)
	must(e)
	s.skus, e = armcompute.NewResourceSKUsClient(s.sub, s.cred, s.opts)
	must(e)
	s.disks, e = armcompute.NewDisksClient(s.sub, s.cred, s.opts)
	must(e)
	s.groups, e = armresources.NewResourceGroupsClient(s.sub, s.cred, s.opts)
	must(e)
	s.generic, e = armresources.NewClient(s.sub, s.cred, s.opts)
	must(e)
	s.subs, e = armsubscriptions.NewClient(s.cred, s.opts)
	must(e)
	s.vnets, e = armnetwork.NewVirtualNetworksClient(s.sub, s.cred, s.opts)
	must(e)
	s.nsgs, e = armnetwork.NewSecurityGroupsClient(s.sub, s.cred, s.opts)
	must(e)
	s.pips, e = armnetwork.NewPublicIPAddressesClient(s.sub, s.cred, s.opts)
	must(e)
	s.nics, e = armnetwork.NewInterfacesClient(s.sub, s.cred, s.opts)
	must(e)
	return s, nil
}

// newTransport is the HTTP client of every SDK call: backends.ProbeTransport, trusting the system
// roots plus the certificates in SSL_CERT_FILE. Go reads SSL_CERT_FILE once per process, when it
// first loads the system roots; reading it again here lets a process trust a certificate set after
// that (a cloud simulator's), and is otherwise the same trust.
func newTransport() (*http.Client, error) {
	base := backends.ProbeTransport
	file := os.Getenv("SSL_CERT_FILE")
	t, ok := base.(*http.Transport)
	if file == "" || !ok {
		return &http.Client{Transport: base}, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("SSL_CERT_FILE: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("SSL_CERT_FILE %s holds no PEM certificate", file)
	}
	t = t.Clone()
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	t.TLSClientConfig.RootCAs = pool
	return &http.Client{Transport: t}, nil
}

// aadError is what Microsoft Entra ID answers when it refuses a token request.
type aadError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	Codes       []int  `json:"error_codes"`
}

// aadRefusal reads AAD's refusal out of an azidentity error; ok is false for errors that are not
// a 400 or 401 from the token or metadata endpoints (network, 5xx, throttling).
func aadRefusal(err error) (aadError, bool) {
	var af *azidentity.AuthenticationFailedError
	if !errors.As(err, &af) || af.RawResponse == nil {
		return aadError{}, false
	}
	if st := af.RawResponse.StatusCode; st != http.StatusBadRequest && st != http.StatusUnauthorized {
		return aadError{}, false
	}
	var e aadError
	body, rerr := readAll(af.RawResponse)
	if rerr != nil || json.Unmarshal(body, &e) != nil || e.Error == "" {
		return aadError{}, false
	}
	return e, true
}

// credentialError maps a failure to get a token: AAD's refusals name the key to fix (AADSTS codes:
// 90002 unknown tenant, 900023 malformed tenant, 700016 unknown application, 7000215/7000222
// wrong or expired secret); a tenant id azidentity refuses to use names the tenant; anything else
// (network, 5xx, throttling, a deadline) is a *backends.ProviderError naming the authority.
func (s *session) credentialError(err error) error {
	if err == nil {
		return nil
	}
	if e, ok := aadRefusal(err); ok {
		msg := backends.RedactString(firstLine(e.Description), s.secrets)
		if msg == "" {
			msg = e.Error
		}
		code := 0
		if len(e.Codes) > 0 {
			code = e.Codes[0]
		}
		switch {
		case code == 90002 || code == 900023 || code == 90013 || e.Error == "invalid_tenant":
			return &backends.CredentialsError{Msg: "Invalid tenant_id: " + msg, Fields: [][]string{s.fields.tenant}}
		case code == 700016 || e.Error == "unauthorized_client":
			return &backends.CredentialsError{Msg: "Invalid client_id: " + msg, Fields: [][]string{s.fields.client}}
		case code == 7000215 || code == 7000222 || code == 7000218 || e.Error == "invalid_client":
			return &backends.CredentialsError{Msg: "Invalid client_secret: " + msg, Fields: [][]string{s.fields.secret}}
		}
		return &backends.CredentialsError{Msg: msg, Fields: [][]string{s.fields.all}}
	}
	text := backends.RedactString(err.Error(), s.secrets)
	switch {
	case unavailable(err):
		return &backends.CredentialsError{Msg: "the default Azure credential chain (environment, workload identity, managed identity, Azure CLI) found no usable credentials: " +
			firstLine(text), Fields: [][]string{{"creds"}}}
	case strings.Contains(text, "invalid tenantID"):
		return &backends.CredentialsError{Msg: "Invalid tenant_id: use the tenant's id (a GUID) or one of its domains", Fields: [][]string{s.fields.tenant}}
	}
	pe := &backends.ProviderError{Provider: provider, URL: backends.ShowURL(s.aad), Err: backends.Redact(err, s.secrets)}
	var af *azidentity.AuthenticationFailedError
	if errors.As(err, &af) && af.RawResponse != nil {
		pe.Status = af.RawResponse.StatusCode
		if body, rerr := readAll(af.RawResponse); rerr == nil {
			pe.Msg = backends.ProviderMessage(body, s.secrets...)
		}
		if pe.Status >= 500 || pe.Msg != "" {
			pe.Err = nil
		}
	}
	return pe
}

// Error codes by what they mean to dstack.
var (
	// capacityCodes make the lifecycle try the next offer.
	capacityCodes = backends.Set("SkuNotAvailable", "AllocationFailed", "ZonalAllocationFailed", "OverconstrainedAllocationRequest",
		"OverconstrainedZonalAllocationRequest", "AllocationFailedVMSSFlexMaxReached", "QuotaExceeded",
		"SpotQuotaExceeded", "LowPriorityQuotaExceeded", "SkuNotAvailableForSubscription")
	// authCodes refuse the token or its permissions.
	authCodes = backends.Set("AuthenticationFailed", "InvalidAuthenticationToken", "InvalidAuthenticationTokenTenant",
		"ExpiredAuthenticationToken", "AuthorizationFailed", "LinkedAuthorizationFailed")
)

// errorCode is ARM's error code of an SDK error, "" for other errors.
func errorCode(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

func httpStatus(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// armMessage is ARM's "code: message" of an SDK error (the SDK's own text is a multi-line dump).
func armMessage(err error) string {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return err.Error()
	}
	msg := ""
	if re.RawResponse != nil {
		if body, rerr := readAll(re.RawResponse); rerr == nil {
			msg = backends.ProviderMessage(body)
		}
	}
	switch {
	case msg != "" && re.ErrorCode != "":
		return re.ErrorCode + ": " + msg
	case re.ErrorCode != "":
		return re.ErrorCode
	case msg != "":
		return msg
	}
	return fmt.Sprintf("HTTP %d %s", re.StatusCode, http.StatusText(re.StatusCode))
}

// isQuota reports an OperationNotAllowed that refuses a launch for a quota (ARM's way to say that
// the subscription's vCPU quota of a family or of spot VMs is used up).
func isQuota(err error) bool {
	if errorCode(err) != "OperationNotAllowed" {
		return false
	}
	m := strings.ToLower(armMessage(err))
	return strings.Contains(m, "quota") || strings.Contains(m, "limit")
}

// mapError turns an SDK error of a machine or offer call into dstack's errors: capacity and quota
// refusals are a *backends.NoCapacityError, a refused token or credential a
// *backends.CredentialsError, an expired deadline or a cancelled call an error that unwraps to it,
// anything else "Azure <where>: code: message" with the status.
func (s *session) mapError(ctx context.Context, where string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return &backends.ProviderError{Provider: provider, URL: backends.ShowURL(s.arm), Err: ctx.Err()}
	}
	var af *azidentity.AuthenticationFailedError
	if errors.As(err, &af) || unavailable(err) {
		return s.credentialError(err)
	}
	code := errorCode(err)
	switch {
	case capacityCodes[code] || isQuota(err):
		return &backends.NoCapacityError{Msg: fmt.Sprintf("Azure %s: %s", where, backends.RedactString(armMessage(err), s.secrets))}
	case authCodes[code]:
		return &backends.CredentialsError{Msg: "Azure answered " + backends.RedactString(armMessage(err), s.secrets), Fields: [][]string{s.fields.all}}
	case code == "SubscriptionNotFound":
		return &backends.CredentialsError{Msg: "Invalid subscription_id: " + backends.RedactString(armMessage(err), s.secrets), Fields: [][]string{{"subscription_id"}}}
	}
	if st := httpStatus(err); st != 0 {
		return fmt.Errorf("Azure %s: HTTP %d: %s", where, st, backends.RedactString(armMessage(err), s.secrets))
	}
	return fmt.Errorf("Azure %s: %w", where, backends.Redact(err, s.secrets))
}

// probeError is mapError for the credential check: failures that say nothing about the config are
// a *backends.ProviderError naming the endpoint.
func (s *session) probeError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return &backends.ProviderError{Provider: provider, URL: backends.ShowURL(s.arm), Err: ctx.Err()}
	}
	mapped := s.mapError(ctx, "check", err)
	var ce *backends.CredentialsError
	var pe *backends.ProviderError
	if errors.As(mapped, &ce) || errors.As(mapped, &pe) {
		return mapped
	}
	pe = &backends.ProviderError{Provider: provider, URL: backends.ShowURL(s.arm), Status: httpStatus(err)}
	if pe.Status == 0 {
		pe.Err = backends.Redact(err, s.secrets)
	} else {
		pe.Msg = backends.RedactString(armMessage(err), s.secrets)
	}
	return pe
}

// token gets a token for Resource Manager, so that a refused credential is told apart from a
// refused call.
func (s *session) token(ctx context.Context) error {
	_, err := s.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{audience + ".default"}})
	if err != nil && ctx.Err() != nil {
		return &backends.ProviderError{Provider: provider, URL: backends.ShowURL(s.aad), Err: ctx.Err()}
	}
	return s.credentialError(err)
}

// unavailable reports a default chain that found no credential to try (azidentity's
// credentialUnavailableError is unexported; its chain names itself in the message).
func unavailable(err error) bool {
	var af *azidentity.AuthenticationFailedError
	return !errors.As(err, &af) && strings.HasPrefix(err.Error(), "DefaultAzureCredential:")
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, " Trace ID:"); i > 0 {
		s = s[:i] // AAD's trace and correlation ids say nothing to the user
	}
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// cachedSession builds a session once for a compute or an offer source.
type cachedSession struct {
	cfg backends.Config
	mu  sync.Mutex
	s   *session
}

func (c *cachedSession) get() (*session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.s == nil {
		s, err := newSession(c.cfg, true)
		if err != nil {
			return nil, err
		}
		c.s = s
	}
	return c.s, nil
}

// readAll is a response's body; azcore keeps it readable again for the SDK's own error text.
func readAll(resp *http.Response) ([]byte, error) { return runtime.Payload(resp) }
