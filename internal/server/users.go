package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/ssh"

	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/store"
)

// apiTime renders times as dstack does: UTC, microseconds, Z.
func apiTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

type userJSON struct {
	ID           string          `json:"id"`
	Username     string          `json:"username"`
	CreatedAt    string          `json:"created_at"`
	GlobalRole   string          `json:"global_role"`
	Email        *string         `json:"email"`
	Active       bool            `json:"active"`
	Permissions  userPermissions `json:"permissions"`
	SSHPublicKey *string         `json:"ssh_public_key"`
}

type userPermissions struct {
	CanCreateProjects bool `json:"can_create_projects"`
}

type userWithCreds struct {
	userJSON
	Creds         map[string]string `json:"creds"`
	SSHPrivateKey *string           `json:"ssh_private_key"`
}

func (s *Server) userJSON(u *models.User) userJSON {
	return userJSON{
		ID: u.ID, Username: u.Username, CreatedAt: apiTime(u.CreatedAt), GlobalRole: u.GlobalRole,
		Email: u.Email, Active: u.Active, SSHPublicKey: nonEmpty(u.SSHPublicKey),
		Permissions: userPermissions{CanCreateProjects: u.GlobalRole == models.GlobalRoleAdmin || s.Permissions().AllowNonAdminsCreateProjects},
	}
}

func (s *Server) userWithCreds(u *models.User) userWithCreds {
	return userWithCreds{userJSON: s.userJSON(u), Creds: map[string]string{"token": u.Token}, SSHPrivateKey: nonEmpty(u.SSHPrivateKey)}
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

var usernameRe = regexp.MustCompile(`^[a-zA-Z0-9-_]{1,60}$`)

// newSSHKey makes an ed25519 key pair: OpenSSH private key PEM and authorized_keys public line.
func newSSHKey(comment string) (priv, pub string, err error) {
	pk, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", err
	}
	block, err := ssh.MarshalPrivateKey(sk, comment)
	if err != nil {
		return "", "", err
	}
	sp, err := ssh.NewPublicKey(pk)
	if err != nil {
		return "", "", err
	}
	return string(pem.EncodeToMemory(block)), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " " + comment + "\n", nil
}

// NewUser builds a user with a fresh token and SSH key pair.
func NewUser(username, role string, email *string, token string) (*models.User, error) {
	if token == "" {
		token = uuid.NewString()
	}
	priv, pub, err := newSSHKey(username)
	if err != nil {
		return nil, err
	}
	return &models.User{Username: username, GlobalRole: role, Email: email, Active: true, Token: token,
		SSHPrivateKey: priv, SSHPublicKey: pub}, nil
}

func (s *Server) internal(err error) *apiError {
	s.log.Error("internal error", "err", err)
	return errInternal
}

type listUsersRequest struct {
	ReturnTotalCount bool    `json:"return_total_count"`
	NamePattern      *string `json:"name_pattern"`
	page
}

// page is the keyset pagination of dstack's list requests: newest first unless ascending, after the
// (prev_created_at, prev_id) of the last item seen, at most limit items.
type page struct {
	PrevCreatedAt *string `json:"prev_created_at"`
	PrevID        *string `json:"prev_id"`
	Limit         *int    `json:"limit"`
	Ascending     bool    `json:"ascending"`
}

// paginate sorts items by creation, skips past the cursor and cuts them to the page; total counts
// them before the cut.
func paginate[T any](p page, items []T, key func(T) (time.Time, string)) (out []T, total int) {
	sort.SliceStable(items, func(i, j int) bool {
		a, _ := key(items[i])
		b, _ := key(items[j])
		if p.Ascending {
			return a.Before(b)
		}
		return a.After(b)
	})
	items = pageAfter(items, p.PrevCreatedAt, p.PrevID, p.Ascending, key)
	total = len(items)
	if p.Limit != nil && *p.Limit >= 0 && *p.Limit < len(items) {
		items = items[:*p.Limit]
	}
	return items, total
}

func (s *Server) listUsers(r *request) (any, *apiError) {
	var req listUsersRequest
	if e := decode(r.Request, &req, true); e != nil {
		return nil, e
	}
	users := []*models.User{r.user}
	if r.user.GlobalRole == models.GlobalRoleAdmin {
		all, err := s.store.ListUsers(r.Context())
		if err != nil {
			return nil, s.internal(err)
		}
		users = all
	}
	var filtered []*models.User
	for _, u := range users {
		if req.NamePattern != nil && !strings.Contains(strings.ToLower(u.Username), strings.ToLower(*req.NamePattern)) {
			continue
		}
		filtered = append(filtered, u)
	}
	filtered, total := paginate(req.page, filtered, func(u *models.User) (time.Time, string) { return u.CreatedAt, u.ID })
	out := make([]userJSON, 0, len(filtered))
	for _, u := range filtered {
		out = append(out, s.userJSON(u))
	}
	if req.ReturnTotalCount {
		return map[string]any{"total_count": total, "users": out}, nil
	}
	return out, nil
}

// pageAfter drops the items up to and including the (prevCreatedAt, prevID) cursor of keyset pagination.
func pageAfter[T any](items []T, prevAt, prevID *string, asc bool, key func(T) (time.Time, string)) []T {
	if prevAt == nil {
		return items
	}
	at, err := time.Parse(time.RFC3339Nano, *prevAt)
	if err != nil {
		return items
	}
	var out []T
	for _, it := range items {
		t, id := key(it)
		after := t.After(at) || (t.Equal(at) && prevID != nil && id > *prevID)
		before := t.Before(at) || (t.Equal(at) && prevID != nil && id < *prevID)
		if (asc && after) || (!asc && before) {
			out = append(out, it)
		}
	}
	return out
}

func (s *Server) getMyUser(r *request) (any, *apiError) {
	return s.userWithCreds(r.user), nil
}

type usernameRequest struct {
	Username string `json:"username" required:"true"`
}

// lookupUser finds a user the caller may see with creds: themselves, or anyone for a global admin.
func (s *Server) lookupUser(r *request, name string) (*models.User, *apiError) {
	if r.user.GlobalRole != models.GlobalRoleAdmin && !strings.EqualFold(name, r.user.Username) {
		return nil, errAccessDenied
	}
	u, err := s.store.GetUserByName(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, clientError(codeResourceNotExists, "User not found")
	}
	if err != nil {
		return nil, s.internal(err)
	}
	return u, nil
}

func (s *Server) getUser(r *request) (any, *apiError) {
	var req usernameRequest
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	u, e := s.lookupUser(r, req.Username)
	if e != nil {
		return nil, e
	}
	return s.userWithCreds(u), nil
}

type userRequest struct {
	Username   string  `json:"username" required:"true"`
	GlobalRole string  `json:"global_role" required:"true"`
	Email      *string `json:"email"`
	Active     *bool   `json:"active"`
}

func (req *userRequest) validate() *apiError {
	if !usernameRe.MatchString(req.Username) {
		return unprocessable(validationItem{Type: "string_pattern_mismatch", Loc: []any{"body", "username"},
			Msg: "String should match pattern '^[a-zA-Z0-9-_]{1,60}$'", Input: req.Username})
	}
	if req.GlobalRole != models.GlobalRoleAdmin && req.GlobalRole != models.GlobalRoleUser {
		return unprocessable(validationItem{Type: "enum", Loc: []any{"body", "global_role"},
			Msg: "Input should be 'admin' or 'user'", Input: req.GlobalRole})
	}
	return nil
}

func (s *Server) createUser(r *request) (any, *apiError) {
	var req userRequest
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	if e := req.validate(); e != nil {
		return nil, e
	}
	u, err := NewUser(req.Username, req.GlobalRole, req.Email, "")
	if err != nil {
		return nil, s.internal(err)
	}
	if req.Active != nil {
		u.Active = *req.Active
	}
	if err := s.store.CreateUser(r.Context(), u); errors.Is(err, store.ErrExists) {
		return nil, clientError(codeResourceExists, "User already exists")
	} else if err != nil {
		return nil, s.internal(err)
	}
	return s.userJSON(u), nil
}

func (s *Server) updateUser(r *request) (any, *apiError) {
	var req userRequest
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	if e := req.validate(); e != nil {
		return nil, e
	}
	u, e := s.lookupUser(r, req.Username)
	if e != nil {
		return nil, e
	}
	u.GlobalRole, u.Email = req.GlobalRole, req.Email
	if req.Active != nil {
		u.Active = *req.Active
	}
	if err := s.store.UpdateUser(r.Context(), u); err != nil {
		return nil, s.internal(err)
	}
	return s.userJSON(u), nil
}

func (s *Server) refreshToken(r *request) (any, *apiError) {
	var req usernameRequest
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	u, e := s.lookupUser(r, req.Username)
	if e != nil {
		return nil, e
	}
	u.Token = uuid.NewString()
	if err := s.store.UpdateUser(r.Context(), u); err != nil {
		return nil, s.internal(err)
	}
	return s.userWithCreds(u), nil
}

type deleteUsersRequest struct {
	Users []string `json:"users" required:"true"`
}

func (s *Server) deleteUsers(r *request) (any, *apiError) {
	var req deleteUsersRequest
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	for _, name := range req.Users {
		if strings.EqualFold(name, r.user.Username) {
			return nil, badRequestf("Cannot delete yourself")
		}
	}
	if err := s.store.DeleteUsers(r.Context(), req.Users); errors.Is(err, store.ErrNotFound) {
		return nil, clientError(codeResourceNotExists, err.Error())
	} else if err != nil {
		return nil, s.internal(err)
	}
	return nil, nil
}
