package fake

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestOCIWire: requests the SDK would never send are refused as OCI refuses them and recorded.
func TestOCIWire(t *testing.T) {
	srv := Start(t, "oci")
	do := func(host, path, auth string) (*http.Response, map[string]string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Host = host
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp, body
	}
	resp, body := do("iaas.us-ashburn-1.oraclecloud.com", "/20160918/shapes?compartmentId="+ociTenancy, "")
	if resp.StatusCode != http.StatusUnauthorized || body["code"] != "NotAuthenticated" || resp.Header.Get("opc-request-id") == "" {
		t.Errorf("unsigned request: %d %v", resp.StatusCode, body)
	}
	resp, body = do("iaas.us-ashburn-1.oraclecloud.com", "/20160918/availabilityDomains?compartmentId="+ociTenancy, "")
	if resp.StatusCode != http.StatusNotFound || body["code"] != "NotAuthorizedOrNotFound" {
		t.Errorf("identity call on the iaas host: %d %v", resp.StatusCode, body)
	}
	resp, _ = do("iaas.us-ashburn-1.oraclecloud.com", "/20160918/instances", `Signature version="1",keyId="a/b/c",algorithm="rsa-sha256",headers="host",signature="x"`)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a signature without date and (request-target): %d", resp.StatusCode)
	}
	misses := strings.Join(srv.Misses(), "\n")
	for _, want := range []string{"not an OCI request signature", "not of \"iaas\"", "does not cover date"} {
		if !strings.Contains(misses, want) {
			t.Errorf("misses lack %q:\n%s", want, misses)
		}
	}
}
