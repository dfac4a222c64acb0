package fake

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// The wire of the GCP simulation: service-account keys, Google's OAuth 2.0 token endpoint for the
// JWT-bearer grant (RFC 7523, as https://oauth2.googleapis.com/token serves it), Bearer access
// tokens on the Compute Engine calls, and Google's JSON error envelope
// {"error": {"code", "message", "errors": [{"message", "domain", "reason"}], "status"}}.

const (
	gcpProject      = "sim-project"
	gcpGoodEmail    = "dstack@sim-project.iam.gserviceaccount.com"
	gcpGoodKeyID    = "5a1f0c9e2b7d4e6f8a3c1b0d9e8f7a6b5c4d3e2f"
	gcpBadEmail     = "invalid-dstack@sim-project.iam.gserviceaccount.com"
	gcpBadKeyID     = "invalid0c9e2b7d4e6f8a3c1b0d9e8f7a6b5c4d3e2"
	gcpJWTGrantType = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	gcpTokenPath    = "/token"
)

var (
	gcpKeysOnce      sync.Once
	gcpGood, gcpBadK *rsa.PrivateKey
)

// gcpKeys are the simulation's service-account keys, made once per process: the good one, whose
// public half verifies assertions, and another.
func gcpKeys() (good, bad *rsa.PrivateKey) {
	gcpKeysOnce.Do(func() {
		var err error
		if gcpGood, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic("fake: gcp key: " + err.Error())
		}
		if gcpBadK, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic("fake: gcp key: " + err.Error())
		}
	})
	return gcpGood, gcpBadK
}

// gcpKeyJSON is a service-account key file as the IAM console downloads it, with token_uri at the
// simulation.
func gcpKeyJSON(k *rsa.PrivateKey, keyID, email, tokenURI string) string {
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	b, _ := json.MarshalIndent(map[string]string{
		"type":                        "service_account",
		"project_id":                  gcpProject,
		"private_key_id":              keyID,
		"private_key":                 string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":                email,
		"client_id":                   "104729340257360392157",
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   tokenURI,
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"client_x509_cert_url":        "https://www.googleapis.com/robot/v1/metadata/x509/" + url.PathEscape(email),
		"universe_domain":             "googleapis.com",
	}, "", "  ")
	return string(b) + "\n"
}

// GCPKeyJSON is the good service-account key of the GCP simulation serving at url (its
// DSTACK_GCP_API_URL): its token_uri is url/token. Strict simulations accept it only.
func GCPKeyJSON(url string) string {
	good, _ := gcpKeys()
	return gcpKeyJSON(good, gcpGoodKeyID, gcpGoodEmail, strings.TrimRight(url, "/")+gcpTokenPath)
}

// gcpEntries are the good and bad backend entries for a simulation at url.
func gcpEntries(u string) (good, bad map[string]any) {
	_, badKey := gcpKeys()
	tokenURI := strings.TrimRight(u, "/") + gcpTokenPath
	sa := func(data string) map[string]any { return map[string]any{"type": "service_account", "data": data} }
	good = map[string]any{"regions": []any{"us-central1"}, "creds": sa(GCPKeyJSON(u))}
	bad = map[string]any{"regions": []any{"us-central1"}, "creds": sa(gcpKeyJSON(badKey, gcpBadKeyID, gcpBadEmail, tokenURI))}
	return good, bad
}

// gcpEnv points Application Default Credentials at the simulation: it writes the good key for url
// to a file under the temporary directory and names it in GOOGLE_APPLICATION_CREDENTIALS, so that
// `creds: {type: default}` finds it as it finds a downloaded key.
func gcpEnv(u string) []string {
	sum := sha256.Sum256([]byte(u))
	dir := filepath.Join(os.TempDir(), "dstack-cloudsim")
	file := filepath.Join(dir, "gcp-"+hex.EncodeToString(sum[:6])+".json")
	if err := os.MkdirAll(dir, 0o700); err == nil {
		_ = os.WriteFile(file, []byte(GCPKeyJSON(u)), 0o600)
	}
	return []string{"GOOGLE_APPLICATION_CREDENTIALS=" + file}
}

// gcpError writes Google's error envelope.
func gcpError(w http.ResponseWriter, code int, reason, msg string) {
	status := map[int]string{400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
		409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}[code]
	domain := "global"
	if reason == "rateLimitExceeded" {
		domain = "usageLimits"
	}
	writeJSON(w, code, map[string]any{"error": map[string]any{
		"code": code, "message": msg, "status": status,
		"errors": []any{map[string]any{"message": msg, "domain": domain, "reason": reason}},
	}})
}

func gcpErrorBody(code int, reason, msg, status string) string {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": code, "message": msg, "status": status,
		"errors": []any{map[string]any{"message": msg, "domain": "global", "reason": reason}}}})
	return string(b)
}

// gcpToken serves POST /token: the JWT-bearer grant. The assertion must be an RS256 JWT whose
// audience is the token endpoint, with iss (the key's client_email), scope, iat and exp at most an
// hour apart. Strict simulations verify its signature with the good key; Lenient ones accept any
// key whose client_email and private_key_id do not contain "invalid". Refusals are answered as
// Google answers them: 400 {"error": "invalid_grant", "error_description"}.
func gcpToken(s *Sim, w http.ResponseWriter, r *http.Request) string {
	oauthErr := func(code int, e, desc string) {
		writeJSON(w, code, map[string]string{"error": e, "error_description": desc})
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		oauthErr(http.StatusBadRequest, "invalid_request", "Invalid content type")
		return "token request with Content-Type " + ct
	}
	if err := r.ParseForm(); err != nil {
		oauthErr(http.StatusBadRequest, "invalid_request", "Invalid request body")
		return "token request body: " + err.Error()
	}
	if gt := r.PostForm.Get("grant_type"); gt != gcpJWTGrantType {
		oauthErr(http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: "+gt)
		return "grant_type " + gt
	}
	parts := strings.Split(r.PostForm.Get("assertion"), ".")
	if len(parts) != 3 {
		oauthErr(http.StatusBadRequest, "invalid_request", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.")
		return "assertion is not a JWT"
	}
	var hdr struct{ Alg, Typ, Kid string }
	var claims struct {
		Iss, Scope, Aud string
		Iat, Exp        int64
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || json.Unmarshal(hb, &hdr) != nil || json.Unmarshal(cb, &claims) != nil {
		oauthErr(http.StatusBadRequest, "invalid_grant", "Invalid JWT: could not decode")
		return "assertion does not decode"
	}
	switch {
	case hdr.Alg != "RS256":
		oauthErr(http.StatusBadRequest, "invalid_grant", "Invalid JWT: unsupported algorithm "+hdr.Alg)
		return "assertion alg " + hdr.Alg
	case claims.Iss == "" || claims.Scope == "":
		oauthErr(http.StatusBadRequest, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
		return "assertion without iss or scope"
	case !strings.HasSuffix(claims.Aud, gcpTokenPath):
		oauthErr(http.StatusBadRequest, "invalid_grant", "Invalid JWT: Failed audience check.")
		return "assertion audience " + claims.Aud
	case claims.Exp-claims.Iat > 3600 || claims.Exp < time.Now().Unix()-60 || claims.Iat > time.Now().Unix()+300:
		oauthErr(http.StatusBadRequest, "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.")
		return "assertion times"
	}
	if s.opts.Auth == Lenient {
		if strings.Contains(strings.ToLower(claims.Iss+hdr.Kid), "invalid") {
			oauthErr(http.StatusBadRequest, "invalid_grant", "Invalid JWT Signature.")
			return ""
		}
	} else {
		good, _ := gcpKeys()
		sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		if rsa.VerifyPKCS1v15(&good.PublicKey, crypto.SHA256, sum[:], sig) != nil {
			oauthErr(http.StatusBadRequest, "invalid_grant", "Invalid JWT Signature.")
			return ""
		}
		if claims.Iss != gcpGoodEmail {
			oauthErr(http.StatusBadRequest, "invalid_grant", "Invalid grant: account not found")
			return ""
		}
	}
	tok := "ya29.sim-" + s.hexID(40)
	s.putObject("gcp-tokens", tok, claims.Iss)
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "expires_in": 3599, "token_type": "Bearer"})
	return ""
}

// gcpAuth checks the Bearer token of a Compute Engine call; false means it answered 401.
func gcpAuth(s *Sim, w http.ResponseWriter, r *http.Request) (why string, ok bool) {
	tok := bearer(r)
	if tok == "" {
		gcpUnauthenticated(w)
		return "no Bearer token", false
	}
	if _, known := s.Objects("gcp-tokens")[tok]; !known {
		gcpUnauthenticated(w)
		return "", false
	}
	return "", true
}

func gcpUnauthenticated(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/"`)
	writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{
		"code":    401,
		"message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
		"status":  "UNAUTHENTICATED",
		"errors": []any{map[string]any{"message": "Invalid Credentials", "domain": "global", "reason": "authError",
			"location": "Authorization", "locationType": "header"}},
	}})
}

// gcpInt reads an int64 that the JSON carries as a string (as Google's APIs encode int64) or a number.
func gcpInt(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	var n int64
	if json.Unmarshal(raw, &n) == nil {
		return n, true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return 0, false
	}
	_, err := fmt.Sscan(s, &n)
	return n, err == nil
}
