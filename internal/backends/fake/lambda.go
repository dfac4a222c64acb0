package fake

import "net/http"

// Lambda Cloud API v1: GET /api/v1/instance-types, authenticated by `Authorization: Bearer <key>` (or
// HTTP basic auth with the key as user name, which the API also takes).
func init() {
	const good = "secret_lambda_good_5b1e2f"
	register("lambda", &provider{
		prefix: "/api/v1",
		method: http.MethodGet,
		path:   "/api/v1/instance-types",
		good:   map[string]any{"regions": []any{"us-east-1"}, "creds": apiKeyCreds(good)},
		bad:    map[string]any{"regions": []any{"us-east-1"}, "creds": apiKeyCreds("secret_lambda_bad_0c77d1")},
		serve: func(w http.ResponseWriter, r *http.Request) string {
			key := bearer(r)
			if key == "" {
				key, _, _ = r.BasicAuth()
			}
			if key != good {
				writeJSON(w, http.StatusUnauthorized, `{"error":{"code":"global/invalid-api-key",`+
					`"message":"API key was invalid, expired, or deleted.",`+
					`"suggestion":"Check your API key or create a new one, then try again."}}`)
				if key == "" {
					return "no API key (want Authorization: Bearer <key>)"
				}
				return ""
			}
			writeJSON(w, http.StatusOK, `{"data":{"gpu_1x_a10":{"instance_type":{"name":"gpu_1x_a10",`+
				`"description":"1x A10 (24 GB PCIe)","gpu_description":"A10 (24 GB PCIe)","price_cents_per_hour":75,`+
				`"specs":{"vcpus":30,"memory_gib":200,"storage_gib":1400,"gpus":1}},`+
				`"regions_with_capacity_available":[{"name":"us-east-1","description":"Virginia, USA"}]}}}`)
			return ""
		},
		failBody: `{"error":{"code":"global/unknown","message":"An unknown error occurred."}}`,
	})
}
