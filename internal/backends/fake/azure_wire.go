package fake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// The Azure simulation's Microsoft Entra ID (Azure AD) side: the v2.0 endpoints that azidentity's
// client-secret credential (MSAL for Go) calls when instance discovery is disabled:
//
//   - GET /{tenant}/v2.0/.well-known/openid-configuration: the tenant's OpenID Connect metadata
//     (authorization_endpoint, token_endpoint and issuer, all on the simulation's own host, so that
//     MSAL's issuer check passes). An unknown tenant is 400 invalid_tenant (AADSTS90002).
//   - POST /{tenant}/oauth2/v2.0/token, form-encoded grant_type=client_credentials, client_id,
//     client_secret and scope=<ARM audience>/.default: 200 {token_type, expires_in, ext_expires_in,
//     access_token}. Refusals as AAD answers them: an unknown application is 400 unauthorized_client
//     (AADSTS700016), a wrong secret 401 invalid_client (AADSTS7000215), an unknown tenant 400
//     invalid_tenant (AADSTS90002), a bad scope 400 invalid_scope (AADSTS70011).
//
// AAD errors are {"error", "error_description", "error_codes", "timestamp", "trace_id",
// "correlation_id", "error_uri"}. Tokens are opaque strings the ARM side looks up; they last an hour.

// azTokenTTL is how long an access token of the simulation is valid.
const azTokenTTL = time.Hour

type azToken struct {
	tenant, client string
	expires        time.Time
}

// azGUID matches a tenant or subscription id in its usual form.
var azGUID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// azTenantOK says whether the directory knows a tenant (by id or by a verified domain).
func (s *Sim) azTenantOK(tenant string) bool {
	if s.opts.Auth == Lenient {
		return tenant != "" && !strings.Contains(strings.ToLower(tenant), "invalid")
	}
	return strings.EqualFold(tenant, azTenant) || strings.EqualFold(tenant, azTenantDomain)
}

func aadError(w http.ResponseWriter, status int, code string, aadsts int, desc string) {
	now := time.Now().UTC()
	trace := fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", now.UnixNano()&0xffffffff, now.Nanosecond()&0xffff, aadsts&0xfff, now.Second(), now.UnixNano()&0xffffffffffff)
	writeJSON(w, status, map[string]any{
		"error":             code,
		"error_description": fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", aadsts, desc, trace, trace, now.Format("2006-01-02 15:04:05Z")),
		"error_codes":       []int{aadsts},
		"timestamp":         now.Format("2006-01-02 15:04:05Z"),
		"trace_id":          trace,
		"correlation_id":    trace,
		"error_uri":         "https://login.microsoftonline.com/error?code=" + fmt.Sprint(aadsts),
	})
}

func aadUnknownTenant(w http.ResponseWriter, tenant string) {
	aadError(w, http.StatusBadRequest, "invalid_tenant", 90002, fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", tenant))
}

// baseURL is the scheme and host the client reached the simulation at.
func baseURL(r *http.Request) string {
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host
}

func aadOpenIDConfig(s *Sim, w http.ResponseWriter, r *http.Request) string {
	tenant := r.PathValue("tenant")
	if r.URL.RawQuery != "" {
		// MSAL sends none; the real endpoint ignores a query, but a client that sends one is not MSAL.
		return "openid-configuration with a query string " + r.URL.RawQuery
	}
	if !s.azTenantOK(tenant) {
		aadUnknownTenant(w, tenant)
		return ""
	}
	base := baseURL(r) + "/" + tenant
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              baseURL(r) + "/" + tenant + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                base + "/v2.0",
		"request_uri_parameter_supported":       false,
		"userinfo_endpoint":                     "https://graph.microsoft.com/oidc/userinfo",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "nonce", "tid", "ver"},
		"tenant_region_scope":                   "NA",
		"cloud_instance_name":                   "microsoftonline.com",
		"cloud_graph_host_name":                 "graph.windows.net",
		"msgraph_host":                          "graph.microsoft.com",
	})
	return ""
}

// azAudiences are the resource identifiers of Azure Resource Manager a token may be asked for.
var azAudiences = []string{"https://management.core.windows.net/", "https://management.core.windows.net",
	"https://management.azure.com/", "https://management.azure.com"}

func aadToken(s *Sim, w http.ResponseWriter, r *http.Request) string {
	tenant := r.PathValue("tenant")
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); ct != "application/x-www-form-urlencoded" {
		aadError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
		return "Content-Type " + ct + ", want application/x-www-form-urlencoded"
	}
	body, err := readBody(r)
	if err != nil {
		aadError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body could not be read.")
		return "body: " + err.Error()
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		aadError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
		return "form: " + err.Error()
	}
	if g := form.Get("grant_type"); g != "client_credentials" {
		aadError(w, http.StatusBadRequest, "unsupported_grant_type", 70003, fmt.Sprintf("The app requested an unsupported grant type '%s'.", g))
		return "grant_type " + g + ", want client_credentials"
	}
	client, secret, scope := form.Get("client_id"), form.Get("client_secret"), form.Get("scope")
	if client == "" {
		aadError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
		return "no client_id"
	}
	if secret == "" {
		aadError(w, http.StatusUnauthorized, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return "no client_secret"
	}
	if !s.azTenantOK(tenant) {
		aadUnknownTenant(w, tenant)
		return ""
	}
	if !s.credOK("client_id", client) {
		aadError(w, http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", client, tenant))
		return ""
	}
	if !s.credOK("client_secret", secret) {
		aadError(w, http.StatusUnauthorized, "invalid_client", 7000215, fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", client))
		return ""
	}
	okScope := false
	for _, sc := range strings.Fields(scope) {
		for _, a := range azAudiences {
			okScope = okScope || sc == strings.TrimSuffix(a, "/")+"/.default" || sc == a+"/.default"
		}
	}
	if !okScope {
		aadError(w, http.StatusBadRequest, "invalid_scope", 70011, fmt.Sprintf("The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope %s is not valid.", scope))
		return "scope " + scope + " is not Azure Resource Manager's /.default scope"
	}
	tok := "sim-arm-" + s.hexID(40)
	w0 := azState(s)
	w0.mu.Lock()
	w0.tokens[tok] = azToken{tenant: strings.ToLower(tenant), client: client, expires: time.Now().Add(azTokenTTL)}
	w0.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": int(azTokenTTL.Seconds()) - 1,
		"ext_expires_in": int(azTokenTTL.Seconds()) - 1, "access_token": tok})
	return ""
}

// armError answers an ARM error: {"error": {"code", "message"}} with the request id headers.
func armError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("x-ms-request-id", fmt.Sprintf("%016x", time.Now().UnixNano()))
	w.Header().Set("x-ms-failure-cause", map[bool]string{true: "gateway", false: "service"}[status == http.StatusUnauthorized])
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

// azFailure answers Fail and injected faults: AAD's error shape on the login endpoints, ARM's on
// the others.
func azFailure(w http.ResponseWriter, r *http.Request, kind string) {
	aad := !strings.HasPrefix(strings.ToLower(r.URL.Path), "/subscriptions")
	switch {
	case kind == FaultThrottle && aad:
		w.Header().Set("Retry-After", "1")
		aadError(w, http.StatusTooManyRequests, "temporarily_unavailable", 50196, "The server terminated an operation because it encountered a client request loop.")
	case kind == FaultThrottle:
		w.Header().Set("Retry-After", "1")
		w.Header().Set("x-ms-ratelimit-remaining-subscription-reads", "0")
		armError(w, http.StatusTooManyRequests, "TooManyRequests", "The request is being throttled as the limit has been reached for operation type - Read_ObservationWindow_00:05:00. For more information, refer to - https://aka.ms/armthrottling")
	case kind == FaultTimeout && aad:
		aadError(w, http.StatusGatewayTimeout, "server_error", 90033, "A transient error has occurred. Please try again.")
	case kind == FaultTimeout:
		armError(w, http.StatusGatewayTimeout, "GatewayTimeout", "The gateway did not receive a response from 'Microsoft.Compute' within the specified time period.")
	case aad:
		aadError(w, http.StatusInternalServerError, "server_error", 90033, "A transient error has occurred. Please try again.")
	default:
		armError(w, http.StatusInternalServerError, "InternalServerError", "Encountered internal server error. Diagnostic information: timestamp '"+time.Now().UTC().Format("20060102T150405Z")+"'.")
	}
}

// jsonObj and friends dig into decoded JSON.
func jsonObj(v any, path ...string) map[string]any {
	cur, _ := v.(map[string]any)
	for _, p := range path {
		if cur == nil {
			return nil
		}
		cur, _ = cur[p].(map[string]any)
	}
	return cur
}

func jsonStr(v any, path ...string) string {
	if len(path) == 0 {
		s, _ := v.(string)
		return s
	}
	m := jsonObj(v, path[:len(path)-1]...)
	s, _ := m[path[len(path)-1]].(string)
	return s
}

func jsonArr(v any, path ...string) []any {
	m := jsonObj(v, path[:len(path)-1]...)
	a, _ := m[path[len(path)-1]].([]any)
	return a
}

func jsonNum(v any, path ...string) (float64, bool) {
	m := jsonObj(v, path[:len(path)-1]...)
	switch n := m[path[len(path)-1]].(type) {
	case float64:
		return n, true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// deepCopyJSON copies decoded JSON so that an answer can be amended without touching the store.
func deepCopyJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, y := range x {
			out[k] = deepCopyJSON(y)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, y := range x {
			out[i] = deepCopyJSON(y)
		}
		return out
	}
	return v
}
