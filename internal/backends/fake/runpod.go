package fake

import (
	"encoding/json"
	"mime"
	"net/http"
	"strings"
)

// RunPod GraphQL API: POST /graphql?api_key=<key> with a JSON body {"query": ...}; the fake answers
// the `myself` query. A refused key gets HTTP 401 with a GraphQL error list.
func init() {
	const good = "secret_runpod_good_9d4c1a"
	register("runpod", &provider{
		prefix: "/graphql",
		method: http.MethodPost,
		path:   "/graphql",
		good:   map[string]any{"community_cloud": false, "creds": apiKeyCreds(good)},
		bad:    map[string]any{"community_cloud": false, "creds": apiKeyCreds("secret_runpod_bad_31f0be")},
		serve: func(w http.ResponseWriter, r *http.Request) string {
			if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
				writeJSON(w, http.StatusBadRequest, `{"errors":[{"message":"POST body missing, invalid Content-Type, or JSON object has no keys."}]}`)
				return "Content-Type " + r.Header.Get("Content-Type") + ", want application/json"
			}
			var req struct {
				Query string `json:"query"`
			}
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil || !strings.Contains(req.Query, "myself") {
				writeJSON(w, http.StatusBadRequest, `{"errors":[{"message":"Must provide query string."}]}`)
				return "body is not a GraphQL `myself` query"
			}
			key := r.URL.Query().Get("api_key")
			if key != good {
				writeJSON(w, http.StatusUnauthorized, `{"errors":[{"message":"Unauthorized: invalid or missing API key","extensions":{"code":"UNAUTHENTICATED"}}]}`)
				if key == "" {
					return "no api_key query parameter"
				}
				return ""
			}
			writeJSON(w, http.StatusOK, `{"data":{"myself":{"id":"user_2fakeRunPodUser"}}}`)
			return ""
		},
		failBody: `{"errors":[{"message":"Something went wrong. Please try again later or contact support.","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}`,
	})
}
