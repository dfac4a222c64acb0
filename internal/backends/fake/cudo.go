package fake

import "net/http"

// CUDO Compute REST API v1: GET /v1/auth with `Authorization: Bearer <key>`. Errors come in the gRPC
// gateway shape {"code": <grpc code>, "message": ..., "details": []}.
func init() {
	const good = "secret_cudo_good_e5d6c7"
	register("cudo", &provider{
		prefix: "/v1",
		method: http.MethodGet,
		path:   "/v1/auth",
		good:   map[string]any{"project_id": "dstack-test", "creds": apiKeyCreds(good)},
		bad:    map[string]any{"project_id": "dstack-test", "creds": apiKeyCreds("secret_cudo_bad_a1b2c3")},
		serve: func(w http.ResponseWriter, r *http.Request) string {
			key := bearer(r)
			if key != good {
				writeJSON(w, http.StatusUnauthorized, `{"code":16,"message":"invalid api key","details":[]}`)
				if key == "" {
					return "no Authorization: Bearer header"
				}
				return ""
			}
			writeJSON(w, http.StatusOK, `{"id":"fake-user","email":"dev@example.com","createTime":"2024-01-01T00:00:00Z"}`)
			return ""
		},
		failBody: `{"code":13,"message":"internal error","details":[]}`,
	})
}
