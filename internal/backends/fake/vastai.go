package fake

import "net/http"

// Vast.ai API v0: GET /api/v0/instances with the key in the api_key query parameter or as
// `Authorization: Bearer <key>`. A refused key gets 401 {"success": false, "error": ..., "msg": ...}.
func init() {
	const good = "secret_vastai_good_c0ffee42"
	register("vastai", &provider{
		prefix: "/api/v0",
		method: http.MethodGet,
		path:   "/api/v0/instances",
		good:   map[string]any{"creds": apiKeyCreds(good)},
		bad:    map[string]any{"creds": apiKeyCreds("secret_vastai_bad_deadbeef")},
		serve: func(w http.ResponseWriter, r *http.Request) string {
			q, b := r.URL.Query().Get("api_key"), bearer(r)
			key := q
			if key == "" {
				key = b
			}
			if key != good || (q != "" && b != "" && q != b) {
				writeJSON(w, http.StatusUnauthorized, `{"success":false,"error":"invalid_user_key","msg":"Invalid user key"}`)
				if key == "" {
					return "no api_key query parameter nor bearer token"
				}
				return ""
			}
			writeJSON(w, http.StatusOK, `{"instances":[]}`)
			return ""
		},
		failBody: `{"success":false,"error":"server_error","msg":"Internal server error"}`,
	})
}
