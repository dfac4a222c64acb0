package fake

import "net/http"

// Vultr API v2: GET /v2/ssh-keys with `Authorization: Bearer <token>`. The fake's URL is the server
// root (the govultr SDK adds /v2). A refused token gets {"error":"Invalid API token.","status":401}.
func init() {
	const good = "SECRETVULTRGOOD7F2Q4K9Z1XW3"
	register("vultr", &provider{
		prefix: "",
		method: http.MethodGet,
		path:   "/v2/ssh-keys",
		good:   map[string]any{"regions": []any{"ewr"}, "creds": apiKeyCreds(good)},
		bad:    map[string]any{"regions": []any{"ewr"}, "creds": apiKeyCreds("SECRETVULTRBAD0A8B6C5D4E3F2")},
		serve: func(w http.ResponseWriter, r *http.Request) string {
			key := bearer(r)
			if key != good {
				writeJSON(w, http.StatusUnauthorized, `{"error":"Invalid API token.","status":401}`)
				if key == "" {
					return "no Authorization: Bearer header"
				}
				return ""
			}
			writeJSON(w, http.StatusOK, `{"ssh_keys":[{"id":"3b8066a7-b438-455a-9688-44afc9a3597f",`+
				`"date_created":"2020-10-10T01:56:20+00:00","name":"dstack","ssh_key":"ssh-ed25519 AAAA dstack"}],`+
				`"meta":{"total":1,"links":{"next":"","prev":""}}}`)
			return ""
		},
		failBody: `{"error":"An internal error occurred.","status":500}`,
	})
}
