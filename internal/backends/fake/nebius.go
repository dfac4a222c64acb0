package fake

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/dstackgo/dstack/internal/backends"
	commonpb "github.com/dstackgo/dstack/internal/backends/nebius/proto/nebius/common/v1"
	iampb "github.com/dstackgo/dstack/internal/backends/nebius/proto/nebius/iam/v1"
)

// Nebius AI Cloud's API is gRPC (github.com/nebius/api), so its simulation is not a Sim (an
// http.Handler) but a gRPC server on a localhost port: NebiusServer, started by StartNebius or
// UseNebius, for the calls of the credential check, with the messages of
// internal/backends/nebius/proto:
//
//   - nebius.iam.v1.TokenExchangeService/Exchange: an RFC 8693 exchange of a self-signed JWT
//     (RS256, header kid = the public key id, iss = sub = the service account id, exp in the
//     future) for an access token. A key id the server does not know, a signature that its public
//     key does not verify, or claims of another account are refused with Unauthenticated; a request
//     that is not such an exchange (grant_type, subject_token_type, a token that is not a JWT) with
//     InvalidArgument, and recorded as a miss.
//   - nebius.iam.v1.TenantService/List and nebius.iam.v1.ProjectService/List (parent_id = the
//     tenant; page_size defaults to 10 and page_token pages on): `authorization: Bearer <access
//     token>` metadata required (Unauthenticated otherwise); projects of another tenant are
//     PermissionDenied.
//
// Which status codes the real token service answers for each refusal is not documented; the
// fake's choices are guesses. The compute services (subnets, disks, instances, operations) are in
// nebius_compute.go. Any other method is Unimplemented and a miss.

// NebiusProject is a project of the fake's tenant.
type NebiusProject struct{ ID, Name, Region string }

// Nebius fake identities: the Good config's service account and key id (the Bad config signs with
// another key under the same ids), and the tenant.
const (
	NebiusServiceAccountID = "serviceaccount-e00fakegood00000000"
	NebiusPublicKeyID      = "publickey-e00fakegood00000000"
	NebiusTenantID         = "tenant-e00fakefake00000000"
)

// NebiusDefaultProjects are the fake tenant's projects at start: eu-north1 has two, one of them
// named default-project-…; eu-west1 has one.
var NebiusDefaultProjects = []NebiusProject{
	{"project-e00fakeeunorth1default", "default-project-eu-north1", "eu-north1"},
	{"project-e00fakeeunorth1other00", "ml-team", "eu-north1"},
	{"project-e01fakeeuwest1only0000", "team-west", "eu-west1"},
}

var (
	nebiusKeysOnce sync.Once
	nebiusGoodKey  *rsa.PrivateKey
	nebiusBadKey   *rsa.PrivateKey
)

func nebiusKeys() (good, bad *rsa.PrivateKey) {
	nebiusKeysOnce.Do(func() {
		var err error
		if nebiusGoodKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if nebiusBadKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return nebiusGoodKey, nebiusBadKey
}

// NebiusKeyPEM encodes a private key as the PKCS#8 PEM of a Nebius authorized key file.
func NebiusKeyPEM(k *rsa.PrivateKey) string {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

type nebiusKey struct {
	account string
	pub     *rsa.PublicKey
}

// NebiusServer is a running Nebius simulation.
type NebiusServer struct {
	// Addr is the server's host:port on 127.0.0.1, the value for DSTACK_NEBIUS_API_URL (plaintext).
	Addr string
	// Good is a complete backend config that the fake accepts; Bad signs with a key it refuses.
	Good, Bad backends.Config
	// Secrets lists the private keys of Good and Bad, for tests that check they never leak.
	Secrets []string

	srv  *grpc.Server
	hits atomic.Int64
	mode atomic.Int32
	stop chan struct{}

	mu       sync.Mutex
	keys     map[string]nebiusKey
	tenants  []string
	projects []NebiusProject
	tokens   map[string]string
	misses   []string
	seq      int
	compute  nebiusComputeState
}

// StartNebius starts the Nebius fake on a localhost port; it stops when the test ends. It does not
// set DSTACK_NEBIUS_API_URL (see UseNebius).
func StartNebius(t testing.TB) *NebiusServer {
	t.Helper()
	good, bad := nebiusKeys()
	s := &NebiusServer{stop: make(chan struct{}), keys: map[string]nebiusKey{}, tokens: map[string]string{},
		tenants: []string{NebiusTenantID}, projects: append([]NebiusProject(nil), NebiusDefaultProjects...)}
	s.AddKey(NebiusServiceAccountID, NebiusPublicKeyID, &good.PublicKey)
	entry := func(k *rsa.PrivateKey) map[string]any {
		return map[string]any{"creds": map[string]any{"type": "service_account",
			"service_account_id": NebiusServiceAccountID, "public_key_id": NebiusPublicKeyID,
			"private_key_content": NebiusKeyPEM(k)}}
	}
	s.Good, s.Bad = config("nebius", entry(good)), config("nebius", entry(bad))
	s.Secrets = []string{NebiusKeyPEM(good), NebiusKeyPEM(bad)}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = lis.Addr().String()
	s.srv = grpc.NewServer(grpc.UnaryInterceptor(s.intercept), grpc.UnknownServiceHandler(s.unknown))
	iampb.RegisterTokenExchangeServiceServer(s.srv, nebiusTokens{s: s})
	iampb.RegisterTenantServiceServer(s.srv, nebiusTenants{s: s})
	iampb.RegisterProjectServiceServer(s.srv, nebiusProjects{s: s})
	s.registerCompute()
	go func() { _ = s.srv.Serve(lis) }()
	t.Cleanup(func() {
		close(s.stop)
		s.srv.Stop()
	})
	return s
}

// UseNebius starts the Nebius fake and points DSTACK_NEBIUS_API_URL at it for the rest of the test.
func UseNebius(t testing.TB) *NebiusServer {
	t.Helper()
	s := StartNebius(t)
	t.Setenv(backends.EnvAPIURL("nebius"), s.Addr)
	return s
}

// AddKey accepts JWTs of a service account signed by the private key of pub under key id keyID.
func (s *NebiusServer) AddKey(serviceAccountID, keyID string, pub *rsa.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[keyID] = nebiusKey{account: serviceAccountID, pub: pub}
}

// SetTenants replaces the tenants the account sees (the check wants exactly one).
func (s *NebiusServer) SetTenants(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tenants = append([]string(nil), ids...)
}

// SetProjects replaces the projects of the first tenant.
func (s *NebiusServer) SetProjects(ps ...NebiusProject) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.projects = append([]NebiusProject(nil), ps...)
}

// OK, Fail and Hang make the fake answer normally, with Internal, or never.
func (s *NebiusServer) OK()   { s.mode.Store(modeOK) }
func (s *NebiusServer) Fail() { s.mode.Store(modeFail) }
func (s *NebiusServer) Hang() { s.mode.Store(modeHang) }

// Hits counts the calls the fake received.
func (s *NebiusServer) Hits() int64 { return s.hits.Load() }

// Misses lists the calls that were not the provider's calls as a client should make them.
func (s *NebiusServer) Misses() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.misses...)
}

func (s *NebiusServer) miss(format string, args ...any) {
	s.mu.Lock()
	s.misses = append(s.misses, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

func (s *NebiusServer) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	s.hits.Add(1)
	switch s.mode.Load() {
	case modeFail:
		return nil, status.Error(codes.Internal, "internal error")
	case modeHang:
		select {
		case <-ctx.Done():
		case <-s.stop:
		}
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if ua := strings.Join(md.Get("user-agent"), " "); !strings.HasPrefix(ua, backends.UserAgent) {
		s.miss("%s: User-Agent %q, want %s", info.FullMethod, ua, backends.UserAgent)
	}
	return h(ctx, req)
}

func (s *NebiusServer) unknown(_ any, stream grpc.ServerStream) error {
	s.hits.Add(1)
	m, _ := grpc.MethodFromServerStream(stream)
	s.miss("%s: not a Nebius call this simulation knows", m)
	return status.Errorf(codes.Unimplemented, "unknown method %s", m)
}

// authed returns the account of the request's bearer token.
func (s *NebiusServer) authed(ctx context.Context, method string) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	h := strings.Join(md.Get("authorization"), "")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		s.miss("%s: no `authorization: Bearer` metadata", method)
		return "", status.Error(codes.Unauthenticated, "missing access token")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	acct, ok := s.tokens[tok]
	if !ok {
		return "", status.Error(codes.Unauthenticated, "invalid access token")
	}
	return acct, nil
}

type nebiusTokens struct {
	iampb.UnimplementedTokenExchangeServiceServer
	s *NebiusServer
}

const nebiusExchange = "/nebius.iam.v1.TokenExchangeService/Exchange"

func (n nebiusTokens) Exchange(_ context.Context, r *iampb.ExchangeTokenRequest) (*iampb.CreateTokenResponse, error) {
	s := n.s
	bad := func(format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		s.miss("%s: %s", nebiusExchange, msg)
		return status.Error(codes.InvalidArgument, msg)
	}
	if r.GetGrantType() != "urn:ietf:params:oauth:grant-type:token-exchange" {
		return nil, bad("grant_type %q", r.GetGrantType())
	}
	if r.GetSubjectTokenType() != "urn:ietf:params:oauth:token-type:jwt" {
		return nil, bad("subject_token_type %q", r.GetSubjectTokenType())
	}
	if t := r.GetRequestedTokenType(); t != "" && t != "urn:ietf:params:oauth:token-type:access_token" {
		return nil, bad("requested_token_type %q", t)
	}
	parts := strings.Split(r.GetSubjectToken(), ".")
	if len(parts) != 3 {
		return nil, bad("subject_token is not a JWT")
	}
	var header struct{ Alg, Kid string }
	var claims struct {
		Iss, Sub string
		Exp, Iat int64
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || json.Unmarshal(hb, &header) != nil || json.Unmarshal(cb, &claims) != nil {
		return nil, bad("subject_token is not a JWT")
	}
	if header.Alg != "RS256" {
		return nil, bad("JWT alg %q, want RS256", header.Alg)
	}
	s.mu.Lock()
	key, ok := s.keys[header.Kid]
	s.mu.Unlock()
	if !ok {
		return nil, status.Errorf(codes.Unauthenticated, "public key %s not found", header.Kid)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(key.pub, crypto.SHA256, sum[:], sig) != nil {
		return nil, status.Error(codes.Unauthenticated, "JWT signature verification failed")
	}
	if claims.Iss != key.account || claims.Sub != key.account {
		return nil, status.Errorf(codes.Unauthenticated, "public key %s does not belong to %s", header.Kid, claims.Sub)
	}
	now := time.Now().Unix()
	if claims.Exp <= now || claims.Iat > now+60 || claims.Exp-claims.Iat > 3600 {
		return nil, status.Error(codes.Unauthenticated, "JWT expired or not yet valid")
	}
	s.mu.Lock()
	s.seq++
	tok := "v1.fake-nebius-access-token-" + strconv.Itoa(s.seq)
	s.tokens[tok] = key.account
	s.mu.Unlock()
	return &iampb.CreateTokenResponse{AccessToken: tok, IssuedTokenType: "urn:ietf:params:oauth:token-type:access_token",
		TokenType: "Bearer", ExpiresIn: 43200}, nil
}

func nebiusContainer(id, parent, name, region string) *iampb.Container {
	return &iampb.Container{Metadata: &commonpb.ResourceMetadata{Id: id, ParentId: parent, Name: name},
		Spec: &iampb.ContainerSpec{Region: region}, Status: &iampb.ContainerStatus{Region: region}}
}

// nebiusPage pages a list: page_size (default 10) items from the offset in page_token.
func nebiusPage[T any](items []T, size int64, token string) ([]T, string, error) {
	if size <= 0 {
		size = 10
	}
	start := 0
	if token != "" {
		n, err := strconv.Atoi(token)
		if err != nil || n < 0 || n > len(items) {
			return nil, "", status.Error(codes.InvalidArgument, "invalid page_token")
		}
		start = n
	}
	end := min(start+int(size), len(items))
	next := ""
	if end < len(items) {
		next = strconv.Itoa(end)
	}
	return items[start:end], next, nil
}

type nebiusTenants struct {
	iampb.UnimplementedTenantServiceServer
	s *NebiusServer
}

func (n nebiusTenants) List(ctx context.Context, r *iampb.ListTenantsRequest) (*iampb.ListTenantsResponse, error) {
	if _, err := n.s.authed(ctx, "/nebius.iam.v1.TenantService/List"); err != nil {
		return nil, err
	}
	n.s.mu.Lock()
	ids := append([]string(nil), n.s.tenants...)
	n.s.mu.Unlock()
	page, next, err := nebiusPage(ids, r.GetPageSize(), r.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &iampb.ListTenantsResponse{NextPageToken: next}
	for _, id := range page {
		out.Items = append(out.Items, nebiusContainer(id, "", id, ""))
	}
	return out, nil
}

type nebiusProjects struct {
	iampb.UnimplementedProjectServiceServer
	s *NebiusServer
}

func (n nebiusProjects) List(ctx context.Context, r *iampb.ListProjectsRequest) (*iampb.ListProjectsResponse, error) {
	if _, err := n.s.authed(ctx, "/nebius.iam.v1.ProjectService/List"); err != nil {
		return nil, err
	}
	n.s.mu.Lock()
	tenant := ""
	if len(n.s.tenants) > 0 {
		tenant = n.s.tenants[0]
	}
	ps := append([]NebiusProject(nil), n.s.projects...)
	n.s.mu.Unlock()
	if r.GetParentId() == "" {
		n.s.miss("/nebius.iam.v1.ProjectService/List: no parent_id")
		return nil, status.Error(codes.InvalidArgument, "parent_id is required")
	}
	if r.GetParentId() != tenant {
		return nil, status.Errorf(codes.PermissionDenied, "permission denied for %s", r.GetParentId())
	}
	page, next, err := nebiusPage(ps, r.GetPageSize(), r.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &iampb.ListProjectsResponse{NextPageToken: next}
	for _, p := range page {
		out.Items = append(out.Items, nebiusContainer(p.ID, tenant, p.Name, p.Region))
	}
	return out, nil
}

// GoodPublicKey is the public half of the Good config's key, for tests that let other service accounts
// (say, the seed document's) sign with it.
func (s *NebiusServer) GoodPublicKey() *rsa.PublicKey {
	good, _ := nebiusKeys()
	return &good.PublicKey
}

// HasGRPC reports whether a backend type is simulated by a gRPC fake here rather than an HTTP one; its
// own package runs the compute lifecycle against it (the shared suite drives HTTP fakes only).
func HasGRPC(typ string) bool { return typ == "nebius" }
