package fake_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/fake"
)

// awsCall sends one signed (or, with key "", unsigned) request to the AWS simulation.
func awsCall(t *testing.T, srv *fake.Server, service, region, key, secret, body string, header map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	req.Header.Set("User-Agent", backends.UserAgent+" test")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if key != "" {
		sum := sha256.Sum256([]byte(body))
		err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: key, SecretAccessKey: secret},
			req, hex.EncodeToString(sum[:]), service, region, time.Now())
		if err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAWSWire checks the simulation's wire format directly: envelopes, namespaces, SigV4 refusals
// and the refusal of malformed requests.
func TestAWSWire(t *testing.T) {
	srv := fake.Start(t, "aws")
	creds := srv.Good.Values["creds"].(map[string]any)
	key, secret := creds["access_key"].(string), creds["secret_key"].(string)
	const vpcs = "Action=DescribeVpcs&Version=2016-11-15&Filter.1.Name=is-default&Filter.1.Value.1=true"
	for _, tc := range []struct {
		name                 string
		service, key, secret string
		body                 string
		header               map[string]string
		status               int
		want                 []string
		miss                 bool
	}{
		{"EC2 answer", "ec2", key, secret, vpcs, nil, 200,
			[]string{`<DescribeVpcsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>`, `<isDefault>true</isDefault>`, `<cidrBlock>172.31.0.0/16</cidrBlock>`}, false},
		{"EC2 unsigned", "ec2", "", "", vpcs, nil, 401,
			[]string{`<Response><Errors><Error><Code>MissingAuthenticationToken</Code>`, `<RequestID>`}, true},
		{"EC2 unknown key", "ec2", "AKIANOSUCHKEY0000000", "x", vpcs, nil, 401, []string{`<Code>AuthFailure</Code>`}, false},
		{"EC2 wrong secret", "ec2", key, "wrong", vpcs, nil, 401, []string{`<Code>AuthFailure</Code>`}, false},
		{"EC2 unknown parameter", "ec2", key, secret, vpcs + "&Colour=blue", nil, 400, []string{`<Code>UnknownParameter</Code>`}, true},
		{"EC2 unknown filter", "ec2", key, secret, "Action=DescribeVpcs&Version=2016-11-15&Filter.1.Name=flavour&Filter.1.Value.1=x", nil, 400,
			[]string{`<Code>InvalidParameterValue</Code>`, `The filter &#39;flavour&#39; is invalid`}, true},
		{"EC2 action not simulated", "ec2", key, secret, "Action=CreateSnapshot&Version=2016-11-15", nil, 400, []string{`<Code>InvalidAction</Code>`}, true},
		{"EC2 volume without a zone", "ec2", key, secret, "Action=CreateVolume&Version=2016-11-15&Size=10", nil, 400, []string{`<Code>MissingParameter</Code>`}, true},
		{"EC2 unknown instance", "ec2", key, secret, "Action=TerminateInstances&Version=2016-11-15&InstanceId.1=i-0123456789abcdef0", nil, 400,
			[]string{`<Code>InvalidInstanceID.NotFound</Code>`}, false},
		{"STS answer", "sts", key, secret, "Action=GetCallerIdentity&Version=2011-06-15", nil, 200,
			[]string{`<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>`, `<Account>210987654321</Account>`, `<ResponseMetadata><RequestId>`}, false},
		{"STS unknown key", "sts", "AKIANOSUCHKEY0000000", "x", "Action=GetCallerIdentity&Version=2011-06-15", nil, 403,
			[]string{`<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code>`}, false},
		{"STS wrong secret", "sts", key, "wrong", "Action=GetCallerIdentity&Version=2011-06-15", nil, 403, []string{`<Code>SignatureDoesNotMatch</Code>`}, false},
		{"signed for another service", "ec2", key, secret, "Action=GetCallerIdentity&Version=2011-06-15", nil, 403,
			[]string{`<Code>SignatureDoesNotMatch</Code>`, `scoped to correct service: &#39;sts&#39;`}, true},
		{"IAM missing profile", "iam", key, secret, "Action=GetInstanceProfile&Version=2010-05-08&InstanceProfileName=nope", nil, 404,
			[]string{`xmlns="https://iam.amazonaws.com/doc/2010-05-08/"`, `<Code>NoSuchEntity</Code>`}, false},
		{"Service Quotas answer", "servicequotas", key, secret, `{"ServiceCode":"ec2","QuotaCode":"L-DB2E81BA"}`,
			map[string]string{"X-Amz-Target": "ServiceQuotasV20190624.GetServiceQuota", "Content-Type": "application/x-amz-json-1.1"}, 200,
			[]string{`"QuotaCode":"L-DB2E81BA"`, `"Class":"G/OnDemand"`, `"Value":64`}, false},
		{"Service Quotas unknown key", "servicequotas", "AKIANOSUCHKEY0000000", "x", `{"ServiceCode":"ec2"}`,
			map[string]string{"X-Amz-Target": "ServiceQuotasV20190624.ListServiceQuotas", "Content-Type": "application/x-amz-json-1.1"}, 400,
			[]string{`"__type":"UnrecognizedClientException"`}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(srv.Misses())
			status, body := awsCall(t, srv, tc.service, "us-east-1", tc.key, tc.secret, tc.body, tc.header)
			if status != tc.status {
				t.Errorf("status %d, want %d: %s", status, tc.status, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("answer lacks %s:\n%s", w, body)
				}
			}
			if missed := len(srv.Misses()) > before; missed != tc.miss {
				t.Errorf("recorded as malformed: %v, want %v (%v)", missed, tc.miss, srv.Misses())
			}
		})
	}

	srv.Fail()
	status, body := awsCall(t, srv, "sts", "us-east-1", key, secret, "Action=GetCallerIdentity&Version=2011-06-15", nil)
	if status != 500 || !strings.Contains(body, "<Type>Receiver</Type><Code>InternalFailure</Code>") {
		t.Errorf("failing STS: %d %s", status, body)
	}
	srv.OK()
	srv.SetFaults(fake.Faults{Rate: 1, Kinds: []string{fake.FaultThrottle}})
	status, body = awsCall(t, srv, "ec2", "us-east-1", key, secret, vpcs, nil)
	if status != 503 || !strings.Contains(body, "<Code>RequestLimitExceeded</Code>") {
		t.Errorf("throttled EC2: %d %s", status, body)
	}
}
