package fake

import (
	"encoding/json"
	"mime"
	"net/http"
)

// DataCrunch API v1: POST /v1/oauth2/token with the JSON body {"grant_type": "client_credentials",
// "client_id", "client_secret"}; a refused client gets 401 {"code": "unauthorized_request", "message"}.
func init() {
	const goodID, goodSecret = "secret_dc_good_id_1f2e", "secret_dc_good_secret_3d4c"
	register("datacrunch", &provider{
		prefix: "/v1",
		method: http.MethodPost,
		path:   "/v1/oauth2/token",
		good: map[string]any{"regions": []any{"FIN-01"}, "creds": map[string]any{"type": "api_key",
			"client_id": goodID, "client_secret": goodSecret}},
		bad: map[string]any{"regions": []any{"FIN-01"}, "creds": map[string]any{"type": "api_key",
			"client_id": "secret_dc_bad_id_5b6a", "client_secret": "secret_dc_bad_secret_7987"}},
		serve: func(w http.ResponseWriter, r *http.Request) string {
			if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
				writeJSON(w, http.StatusBadRequest, `{"code":"invalid_request","message":"Content-Type must be application/json"}`)
				return "Content-Type " + r.Header.Get("Content-Type") + ", want application/json"
			}
			var req struct {
				GrantType    string `json:"grant_type"`
				ClientID     string `json:"client_id"`
				ClientSecret string `json:"client_secret"`
			}
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.GrantType != "client_credentials" {
				writeJSON(w, http.StatusBadRequest, `{"code":"invalid_request","message":"grant_type must be client_credentials"}`)
				return "body is not a client_credentials grant"
			}
			if req.ClientID == "" || req.ClientSecret == "" {
				writeJSON(w, http.StatusBadRequest, `{"code":"invalid_request","message":"client_id and client_secret are required"}`)
				return "no client_id or client_secret"
			}
			if req.ClientID != goodID || req.ClientSecret != goodSecret {
				writeJSON(w, http.StatusUnauthorized, `{"code":"unauthorized_request","message":"Invalid client credentials"}`)
				return ""
			}
			writeJSON(w, http.StatusOK, `{"access_token":"fake-access-token","refresh_token":"fake-refresh-token",`+
				`"scope":"cloud-api-v1","token_type":"Bearer","expires_in":3600}`)
			return ""
		},
		failBody: `{"code":"internal_error","message":"Internal server error"}`,
	})
}
