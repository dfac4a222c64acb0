package nebius

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/dstackgo/dstack/internal/backends"
	iampb "github.com/dstackgo/dstack/internal/backends/nebius/proto/nebius/iam/v1"
)

// Wire constants of the token exchange (RFC 8693) as Nebius's SDKs send them.
const (
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeAccessToken   = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeJWT           = "urn:ietf:params:oauth:token-type:jwt"
	// JWTAudience is the audience the Go SDK puts in a service account's JWT.
	JWTAudience = "token-service.iam.new.nebiuscloud.net"
	// DefaultProjectPrefix starts the name of a region's default project.
	DefaultProjectPrefix = "default-project"
)

// Service names: each listens at <name>.<domain> (the api_service_name annotations).
const (
	serviceTokens = "tokens.iam"
	serviceIAM    = "cpl.iam"
)

// Project is a Nebius project: its id, name and region.
type Project struct{ ID, Name, Region string }

var credsField = [][]string{{"creds"}}

// Check is the credential check (see the package doc).
func Check(ctx context.Context, cfg backends.Config) error {
	key, err := ParsePrivateKey(cfg.String("creds", "private_key_content"))
	if err != nil {
		return &backends.CredentialsError{Msg: err.Error(), Fields: credsField}
	}
	c, err := dial(ctx, cfg, key)
	if err != nil {
		return err
	}
	defer c.close()
	projects, err := c.listProjects(ctx)
	if err != nil {
		return err
	}
	configured, hasConfigured := cfg.Values["projects"]
	_, err = RegionProjects(projects, cfg.Strings("regions"), cfg.Strings("projects"), hasConfigured && configured != nil)
	if err != nil {
		return err
	}
	var unknown []string
	for _, f := range cfg.Strings("fabrics") {
		if _, ok := Fabrics[f]; !ok {
			unknown = append(unknown, f)
		}
	}
	if len(unknown) > 0 {
		known := make([]string, 0, len(Fabrics))
		for f := range Fabrics {
			known = append(known, f)
		}
		sort.Strings(known)
		sort.Strings(unknown)
		return &backends.CredentialsError{Fields: [][]string{{"fabrics"}}, Msg: fmt.Sprintf(
			"These InfiniBand fabrics do not exist or are not known to dstack: %v. Omit `fabrics` to allow all fabrics or select some of the valid options: %v",
			unknown, known)}
	}
	return nil
}

// ParsePrivateKey reads a PEM RSA private key, PKCS#8 or PKCS#1.
func ParsePrivateKey(text string) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(strings.TrimSpace(text)))
	if block == nil {
		return nil, errors.New("the private key is not in PEM format")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("the private key is not a valid PKCS#8 or PKCS#1 key")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("the private key is not an RSA key")
	}
	return rk, nil
}

// SignJWT makes the self-signed JWT that the token service exchanges for an access token.
func SignJWT(key *rsa.PrivateKey, serviceAccountID, publicKeyID string, now time.Time) (string, error) {
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": publicKeyID})
	claims, _ := json.Marshal(map[string]any{"iss": serviceAccountID, "sub": serviceAccountID,
		"aud": JWTAudience, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
	signing := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return signing + "." + enc.EncodeToString(sig), nil
}

// endpoint is where one service listens.
type endpoint struct {
	addr      string
	plaintext bool
}

// endpointFor resolves a service by DSTACK_NEBIUS_API_URL, else by Nebius's convention.
func endpointFor(service string) endpoint {
	u := backends.APIURL("nebius", "")
	if u == "" {
		return endpoint{addr: service + "." + DefaultDomain}
	}
	ep := endpoint{addr: u}
	switch {
	case strings.HasPrefix(u, "http://"):
		ep = endpoint{addr: strings.TrimPrefix(u, "http://"), plaintext: true}
	case strings.HasPrefix(u, "https://"):
		ep.addr = strings.TrimPrefix(u, "https://")
	}
	host := ep.addr
	if h, _, err := net.SplitHostPort(ep.addr); err == nil {
		host = h
	}
	if host == "127.0.0.1" || host == "::1" || host == "localhost" {
		ep.plaintext = true
	}
	return ep
}

// client holds the connections of one check and its access token.
type client struct {
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
	token string
}

func (c *client) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cc := range c.conns {
		_ = cc.Close()
	}
}

func (c *client) conn(service string) (*grpc.ClientConn, string, error) {
	ep := endpointFor(service)
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc, ok := c.conns[ep.addr]; ok {
		return cc, ep.addr, nil
	}
	tc := credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	if ep.plaintext {
		tc = insecure.NewCredentials()
	}
	cc, err := grpc.NewClient(ep.addr, grpc.WithTransportCredentials(tc), grpc.WithUserAgent(backends.UserAgent))
	if err != nil {
		return nil, ep.addr, fmt.Errorf("nebius: %s: %w", ep.addr, err)
	}
	c.conns[ep.addr] = cc
	return cc, ep.addr, nil
}

// dial exchanges the service account's JWT for an access token.
func dial(ctx context.Context, cfg backends.Config, key *rsa.PrivateKey) (*client, error) {
	c := &client{conns: map[string]*grpc.ClientConn{}}
	jwt, err := SignJWT(key, cfg.String("creds", "service_account_id"), cfg.String("creds", "public_key_id"), time.Now())
	if err != nil {
		return nil, &backends.CredentialsError{Msg: "cannot sign with the private key: " + err.Error(), Fields: credsField}
	}
	cc, addr, err := c.conn(serviceTokens)
	if err != nil {
		return nil, err
	}
	resp, err := iampb.NewTokenExchangeServiceClient(cc).Exchange(ctx, &iampb.ExchangeTokenRequest{
		GrantType:          GrantTypeTokenExchange,
		RequestedTokenType: TokenTypeAccessToken,
		SubjectToken:       jwt,
		SubjectTokenType:   TokenTypeJWT,
	})
	if err != nil {
		c.close()
		return nil, callError(ctx, addr, "token exchange", err, true)
	}
	if resp.GetAccessToken() == "" || !strings.EqualFold(resp.GetTokenType(), "Bearer") {
		c.close()
		return nil, fmt.Errorf("nebius: token exchange at %s: no bearer token in the answer (token_type %q)", addr, resp.GetTokenType())
	}
	c.token = resp.GetAccessToken()
	return c, nil
}

func (c *client) authed(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
}

// listProjects finds the account's one tenant and lists its projects.
func (c *client) listProjects(ctx context.Context) ([]Project, error) {
	cc, addr, err := c.conn(serviceIAM)
	if err != nil {
		return nil, err
	}
	tenants, err := iampb.NewTenantServiceClient(cc).List(c.authed(ctx), &iampb.ListTenantsRequest{PageSize: 999})
	if err != nil {
		return nil, callError(ctx, addr, "listing tenants", err, false)
	}
	if n := len(tenants.GetItems()); n != 1 {
		return nil, &backends.CredentialsError{Msg: fmt.Sprintf("Expected to find 1 tenant, found %d", n), Fields: credsField}
	}
	tenant := tenants.GetItems()[0].GetMetadata().GetId()
	projects := iampb.NewProjectServiceClient(cc)
	var out []Project
	req := &iampb.ListProjectsRequest{ParentId: tenant, PageSize: 999}
	for page := 0; page < 100; page++ {
		resp, err := projects.List(c.authed(ctx), req)
		if err != nil {
			return nil, callError(ctx, addr, "listing projects", err, false)
		}
		for _, p := range resp.GetItems() {
			region := p.GetStatus().GetRegion()
			if region == "" {
				region = p.GetSpec().GetRegion()
			}
			out = append(out, Project{ID: p.GetMetadata().GetId(), Name: p.GetMetadata().GetName(), Region: region})
		}
		if resp.GetNextPageToken() == "" {
			return out, nil
		}
		req.PageToken = resp.GetNextPageToken()
	}
	return nil, fmt.Errorf("nebius: listing projects at %s: more than 100 pages", addr)
}

// callError turns a failed call into a verdict on the credentials (the service refused them) or a
// plain error that names the address.
func callError(ctx context.Context, addr, what string, err error, exchange bool) error {
	if ctx.Err() != nil {
		return fmt.Errorf("nebius: %s at %s: %w", what, addr, ctx.Err())
	}
	st := status.Convert(err)
	switch st.Code() {
	case codes.DeadlineExceeded: // gRPC's timer can fire a moment before the context says so
		return fmt.Errorf("nebius: %s at %s: %w", what, addr, context.DeadlineExceeded)
	case codes.Canceled:
		return fmt.Errorf("nebius: %s at %s: %w", what, addr, context.Canceled)
	case codes.Unauthenticated, codes.PermissionDenied:
		return &backends.CredentialsError{Msg: st.Message(), Fields: credsField}
	case codes.InvalidArgument, codes.NotFound:
		if exchange {
			return &backends.CredentialsError{Msg: st.Message(), Fields: credsField}
		}
	}
	return fmt.Errorf("nebius: %s at %s: %s: %s", what, addr, st.Code(), st.Message())
}

// RegionProjects builds the region → project id map. With configured projects (hasConfigured,
// even empty), each must be one of the tenant's and at most one per region; else each region's
// project is its only one or the one whose name starts with "default-project". Configured regions
// must have a project of the tenancy, and filter the map.
func RegionProjects(all []Project, regions, configured []string, hasConfigured bool) (map[string]string, error) {
	available := map[string]bool{}
	for _, p := range all {
		available[p.Region] = true
	}
	var missing []string
	for _, r := range regions {
		if !available[r] {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		have := make([]string, 0, len(available))
		for r := range available {
			have = append(have, r)
		}
		sort.Strings(have)
		return nil, &backends.CredentialsError{Fields: [][]string{{"regions"}}, Msg: fmt.Sprintf(
			"Configured regions %v do not exist in this Nebius tenancy. Omit `regions` to use all regions or select some of the available regions: %v",
			missing, have)}
	}
	wanted := func(r string) bool {
		if len(regions) == 0 {
			return true
		}
		for _, x := range regions {
			if x == r {
				return true
			}
		}
		return false
	}
	out := map[string]string{}
	if hasConfigured {
		byID := map[string]Project{}
		for _, p := range all {
			byID[p.ID] = p
		}
		for _, id := range configured {
			p, ok := byID[id]
			if !ok {
				return nil, &backends.CredentialsError{Fields: [][]string{{"projects"}},
					Msg: fmt.Sprintf("Configured project ID %q not found in this Nebius tenancy", id)}
			}
			if dup, ok := out[p.Region]; ok {
				return nil, &backends.CredentialsError{Fields: [][]string{{"projects"}}, Msg: fmt.Sprintf(
					"Configured projects %s and %s both belong to the same region %s. Only one project per region is allowed",
					id, dup, p.Region)}
			}
			out[p.Region] = id
		}
		for r := range out {
			if !wanted(r) {
				delete(out, r)
			}
		}
		return out, nil
	}
	byRegion := map[string][]Project{}
	var order []string
	for _, p := range all {
		if _, ok := byRegion[p.Region]; !ok {
			order = append(order, p.Region)
		}
		byRegion[p.Region] = append(byRegion[p.Region], p)
	}
	sort.Strings(order)
	for _, r := range order {
		if !wanted(r) {
			continue
		}
		ps := byRegion[r]
		if len(ps) != 1 {
			var defaults []Project
			for _, p := range ps {
				if strings.HasPrefix(p.Name, DefaultProjectPrefix) {
					defaults = append(defaults, p)
				}
			}
			if len(defaults) != 1 {
				return nil, &backends.CredentialsError{Fields: [][]string{{"regions"}}, Msg: fmt.Sprintf(
					"Could not find the default project in region %s. Consider setting the `projects` property in backend settings", r)}
			}
			ps = defaults
		}
		out[r] = ps[0].ID
	}
	return out, nil
}
