package aws

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/dstackgo/dstack/internal/backends"
)

// session is what every call of one backend config shares: the SDK configuration (credentials,
// retryer, HTTP client) and the endpoint override.
type session struct {
	cfg aws.Config
	// endpoint is DSTACK_AWS_API_URL, "" for the real per-service, per-region endpoints.
	endpoint string
	secrets  []string
	// fields are the config keys a credentials refusal names.
	fields [][]string

	mu  sync.Mutex
	ec2 map[string]*ec2.Client
	sq  map[string]*servicequotas.Client
	elb map[string]*elb.Client
	acm map[string]*acm.Client
}

// Retry bounds of the machine and offer calls: throttling (RequestLimitExceeded, Throttling,
// TooManyRequestsException) and 5xx are retried with the SDK's jittered exponential backoff.
const (
	maxAttempts = 4
	maxBackoff  = 5 * time.Second
)

// newSession builds the SDK configuration of a backend config. retries false makes every call a
// single attempt (the credential check: one call, one verdict).
func newSession(ctx context.Context, cfg backends.Config, retries bool) (*session, error) {
	s := &session{endpoint: backends.APIURL(typ, ""), ec2: map[string]*ec2.Client{}, sq: map[string]*servicequotas.Client{},
		elb: map[string]*elb.Client{}, acm: map[string]*acm.Client{}}
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(mainRegion),
		// The SDK's own client, so that AWS_CA_BUNDLE and the SDK's transport settings apply.
		config.WithHTTPClient(awshttp.NewBuildableClient()),
		config.WithAPIOptions([]func(*middleware.Stack) error{userAgentFirst}),
		config.WithRetryer(func() aws.Retryer {
			if !retries {
				return aws.NopRetryer{}
			}
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts, o.MaxBackoff = maxAttempts, maxBackoff
				o.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(noRetry)}, o.Retryables...)
			})
		}),
	}
	switch cfg.String("creds", "type") {
	case "access_key":
		key, secret := cfg.String("creds", "access_key"), cfg.String("creds", "secret_key")
		s.secrets = []string{secret}
		s.fields = [][]string{{"creds", "access_key"}, {"creds", "secret_key"}}
		if key == "" || secret == "" {
			return nil, &backends.CredentialsError{Msg: "an access key and a secret key are required", Fields: s.fields}
		}
		// Explicit keys need nothing from ~/.aws: the session stays the same on any host.
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(key, secret, "")),
			config.WithSharedConfigFiles([]string{}), config.WithSharedCredentialsFiles([]string{}))
	case "default":
		s.fields = [][]string{{"creds"}}
	default:
		return nil, &backends.CredentialsError{Msg: "unknown credentials type " + cfg.String("creds", "type"), Fields: [][]string{{"creds", "type"}}}
	}
	c, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, &backends.CredentialsError{Msg: "the AWS configuration does not load: " + backends.RedactString(err.Error(), s.secrets), Fields: s.fields}
	}
	s.cfg = c
	return s, nil
}

// noRetry keeps the retryer off answers that another attempt cannot change: capacity refusals
// (the caller tries the next zone or offer) and credential refusals.
func noRetry(err error) aws.Ternary {
	if code := errorCode(err); capacityCodes[code] || authCodes[code] {
		return aws.FalseTernary
	}
	return aws.UnknownTernary
}

// userAgentFirst puts dstack first in the SDK's User-Agent (which SigV4 does not sign), after the
// SDK built it.
func userAgentFirst(stack *middleware.Stack) error {
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("DstackUserAgent",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			if req, ok := in.Request.(*smithyhttp.Request); ok {
				req.Header.Set("User-Agent", strings.TrimSpace(backends.UserAgent+" "+req.Header.Get("User-Agent")))
			}
			return next.HandleFinalize(ctx, in)
		}), middleware.After)
}

// endpointOf is how a client of a service reaches its endpoint: DSTACK_AWS_API_URL when set.
func (s *session) endpointOf() *string {
	if s.endpoint == "" {
		return nil
	}
	return aws.String(s.endpoint)
}

func (s *session) ec2Client(region string) *ec2.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.ec2[region]
	if c == nil {
		c = ec2.NewFromConfig(s.cfg, func(o *ec2.Options) { o.Region, o.BaseEndpoint = region, s.endpointOf() })
		s.ec2[region] = c
	}
	return c
}

func (s *session) quotasClient(region string) *servicequotas.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.sq[region]
	if c == nil {
		c = servicequotas.NewFromConfig(s.cfg, func(o *servicequotas.Options) { o.Region, o.BaseEndpoint = region, s.endpointOf() })
		s.sq[region] = c
	}
	return c
}

// elbClient is Elastic Load Balancing v2 (the ACM gateways' Application Load Balancers).
func (s *session) elbClient(region string) *elb.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.elb[region]
	if c == nil {
		c = elb.NewFromConfig(s.cfg, func(o *elb.Options) { o.Region, o.BaseEndpoint = region, s.endpointOf() })
		s.elb[region] = c
	}
	return c
}

// acmClient is AWS Certificate Manager (the certificates of ACM gateways).
func (s *session) acmClient(region string) *acm.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.acm[region]
	if c == nil {
		c = acm.NewFromConfig(s.cfg, func(o *acm.Options) { o.Region, o.BaseEndpoint = region, s.endpointOf() })
		s.acm[region] = c
	}
	return c
}

func (s *session) stsClient() *sts.Client {
	return sts.NewFromConfig(s.cfg, func(o *sts.Options) { o.Region, o.BaseEndpoint = mainRegion, s.endpointOf() })
}

func (s *session) iamClient() *iam.Client {
	return iam.NewFromConfig(s.cfg, func(o *iam.Options) { o.Region, o.BaseEndpoint = mainRegion, s.endpointOf() })
}

// shownURL names the endpoint of a service in messages.
func (s *session) shownURL(service, region string) string {
	if s.endpoint != "" {
		return backends.ShowURL(s.endpoint)
	}
	if service == "iam" {
		return "https://iam.amazonaws.com"
	}
	return fmt.Sprintf("https://%s.%s.amazonaws.com", service, region)
}

// Error codes by what they mean to dstack.
var (
	// capacityCodes make the lifecycle try the next zone, then the next offer.
	capacityCodes = backends.Set("InsufficientInstanceCapacity", "InsufficientCapacity", "InsufficientHostCapacity",
		"InsufficientReservedInstanceCapacity", "InstanceLimitExceeded", "VcpuLimitExceeded", "MaxSpotInstanceCountExceeded",
		"SpotMaxPriceTooLow", "UnfulfillableCapacity", "Unsupported", "InsufficientFreeAddressesInSubnet")
	// authCodes refuse the credentials (or their permissions): the backend is invalid until fixed.
	authCodes = backends.Set("AuthFailure", "InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException",
		"InvalidSignatureException", "MissingAuthenticationToken", "MissingAuthenticationTokenException", "IncompleteSignature",
		"IncompleteSignatureException", "ExpiredToken", "ExpiredTokenException", "InvalidAccessKeyId", "UnauthorizedOperation",
		"AccessDenied", "AccessDeniedException", "OptInRequired", "Blocked")
)

// errorCode is the API error code of an SDK error, "" for other errors.
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func errorMessage(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if m := ae.ErrorMessage(); m != "" {
			return ae.ErrorCode() + ": " + m
		}
		return ae.ErrorCode()
	}
	return err.Error()
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// mapError turns an SDK error of a machine or offer call into dstack's errors: capacity codes are
// a *backends.NoCapacityError, credential codes a *backends.CredentialsError, anything else the
// SDK's error (it names the operation, the status and the request id) with the region.
func (s *session) mapError(region string, err error) error {
	if err == nil {
		return nil
	}
	code := errorCode(err)
	switch {
	case capacityCodes[code]:
		return &backends.NoCapacityError{Msg: fmt.Sprintf("AWS %s: %s", region, errorMessage(err))}
	case authCodes[code]:
		return &backends.CredentialsError{Msg: "AWS answered " + errorMessage(err), Fields: s.fields}
	}
	return fmt.Errorf("AWS %s: %w", region, backends.Redact(err, s.secrets))
}

// probeError turns an SDK error of the credential check into its verdict: credential codes are a
// *backends.CredentialsError; anything else (network, timeout, 5xx, throttling) is a
// *backends.ProviderError naming the endpoint.
func (s *session) probeError(service, region string, err error) error {
	code := errorCode(err)
	if authCodes[code] {
		return &backends.CredentialsError{Msg: "AWS answered " + backends.RedactString(errorMessage(err), s.secrets), Fields: s.fields}
	}
	status := httpStatus(err)
	pe := &backends.ProviderError{Provider: provider, URL: s.shownURL(service, region), Status: status}
	if status == 0 || code == "" {
		pe.Err = backends.Redact(err, s.secrets)
		if status == 0 {
			return pe
		}
	}
	pe.Msg = backends.RedactString(errorMessage(err), s.secrets)
	return pe
}
