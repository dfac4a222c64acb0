package fake

import (
	"mime"
	"net/http"
)

// TensorDock Marketplace API v0: POST /api/v0/auth/test with the form fields api_key and api_token;
// the answer is {"success": true} or, with HTTP 200 too, {"success": false, "error": ...}.
func init() {
	const goodKey, goodToken = "secret_td_good_key_41aa", "secret_td_good_token_93bb"
	register("tensordock", &provider{
		prefix: "/api/v0",
		method: http.MethodPost,
		path:   "/api/v0/auth/test",
		good: map[string]any{"creds": map[string]any{"type": "api_key",
			"api_key": goodKey, "api_token": goodToken}},
		bad: map[string]any{"creds": map[string]any{"type": "api_key",
			"api_key": "secret_td_bad_key_07cc", "api_token": "secret_td_bad_token_58dd"}},
		serve: func(w http.ResponseWriter, r *http.Request) string {
			ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if ct != "application/x-www-form-urlencoded" && ct != "multipart/form-data" {
				writeJSON(w, http.StatusOK, `{"success":false,"error":"Missing api_key or api_token"}`)
				return "Content-Type " + r.Header.Get("Content-Type") + ", want a form"
			}
			key, token := r.PostFormValue("api_key"), r.PostFormValue("api_token")
			if key == "" || token == "" {
				writeJSON(w, http.StatusOK, `{"success":false,"error":"Missing api_key or api_token"}`)
				return "form lacks api_key or api_token"
			}
			if key != goodKey || token != goodToken {
				writeJSON(w, http.StatusOK, `{"success":false,"error":"Invalid authorization key or token"}`)
				return ""
			}
			writeJSON(w, http.StatusOK, `{"success":true}`)
			return ""
		},
		failBody: `{"success":false,"error":"Internal server error"}`,
	})
}
