package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/dstackgo/dstack/internal/models"
)

const userCols = "id, username, global_role, email, active, created_at, token_hash, token, ssh_public_key, ssh_private_key"

// CreateUser inserts u, filling ID (a new UUID) and CreatedAt when empty and TokenHash from Token.
// A live user with the same name in any case is ErrExists.
func (s *Store) CreateUser(ctx context.Context, u *models.User) error {
	if u.Token == "" {
		return fmt.Errorf("create user %q: token is required", u.Username)
	}
	token, err := s.encrypt(u.Token)
	if err != nil {
		return fmt.Errorf("create user %q: %w", u.Username, err)
	}
	sshKey, err := s.encrypt(u.SSHPrivateKey)
	if err != nil {
		return fmt.Errorf("create user %q: %w", u.Username, err)
	}
	if u.ID == "" {
		u.ID = uuid.NewString()
	}
	u.CreatedAt = stamp(u.CreatedAt)
	u.TokenHash = hashToken(u.Token)
	_, err = s.exec(ctx, `INSERT INTO users (`+userCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Username, u.GlobalRole, nullString(u.Email), u.Active, s.timeArg(&u.CreatedAt),
		u.TokenHash, token, u.SSHPublicKey, sshKey)
	if isUniqueViolation(err) {
		return fmt.Errorf("user %q: %w", u.Username, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create user %q: %w", u.Username, err)
	}
	return nil
}

// GetUserByName finds a live user by name, ignoring case.
func (s *Store) GetUserByName(ctx context.Context, name string) (*models.User, error) {
	u, err := s.scanUser(s.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE lower(username) = lower(?) AND NOT deleted`, name))
	return u, notFound(err, fmt.Sprintf("user %q", name))
}

// GetUserByID finds a live user by ID.
func (s *Store) GetUserByID(ctx context.Context, id string) (*models.User, error) {
	u, err := s.scanUser(s.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = ? AND NOT deleted`, id))
	return u, notFound(err, fmt.Sprintf("user with id %q", id))
}

// GetUserByToken finds the live user whose token is token, by its hash. Inactive users are returned
// too: refusing them is the caller's decision.
func (s *Store) GetUserByToken(ctx context.Context, token string) (*models.User, error) {
	u, err := s.scanUser(s.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE token_hash = ? AND NOT deleted`, hashToken(token)))
	return u, notFound(err, "user with this token")
}

// ListUsers returns the live users, oldest first.
func (s *Store) ListUsers(ctx context.Context) ([]*models.User, error) {
	rows, err := s.query(ctx, `SELECT `+userCols+` FROM users WHERE NOT deleted ORDER BY created_at, username`)
	return collect(rows, err, s.scanUser)
}

// UpdateUser saves u's role, email, active flag, token (refreshing TokenHash) and SSH keys; the
// user is found by u.ID.
func (s *Store) UpdateUser(ctx context.Context, u *models.User) error {
	if u.Token == "" {
		return fmt.Errorf("update user %q: token is required", u.Username)
	}
	token, err := s.encrypt(u.Token)
	if err != nil {
		return fmt.Errorf("update user %q: %w", u.Username, err)
	}
	sshKey, err := s.encrypt(u.SSHPrivateKey)
	if err != nil {
		return fmt.Errorf("update user %q: %w", u.Username, err)
	}
	u.TokenHash = hashToken(u.Token)
	err = s.execOne(ctx, fmt.Sprintf("user %q", u.Username),
		`UPDATE users SET global_role = ?, email = ?, active = ?, token_hash = ?, token = ?, ssh_public_key = ?, ssh_private_key = ?
		WHERE id = ? AND NOT deleted`,
		u.GlobalRole, nullString(u.Email), u.Active, u.TokenHash, token, u.SSHPublicKey, sshKey, u.ID)
	if isUniqueViolation(err) {
		return fmt.Errorf("update user %q: token %w", u.Username, ErrExists)
	}
	return err
}

// DeleteUsers soft-deletes the named users (ignoring case) and removes their project memberships.
// If any name is unknown, nothing is deleted and the error (ErrNotFound) lists the unknown names.
func (s *Store) DeleteUsers(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	return s.WithTx(ctx, func(tx *Store) error {
		ids, err := tx.liveIDsByName(ctx, "users", "username", "users", names)
		if err != nil {
			return err
		}
		idArgs := stringArgs(ids)
		if _, err := tx.exec(ctx, `DELETE FROM members WHERE user_id IN (`+placeholders(len(idArgs))+`)`, idArgs...); err != nil {
			return err
		}
		_, err = tx.exec(ctx, `UPDATE users SET deleted = TRUE, active = FALSE WHERE id IN (`+placeholders(len(idArgs))+`)`, idArgs...)
		return err
	})
}

func (s *Store) scanUser(row scanner) (*models.User, error) {
	var (
		u         models.User
		email     sql.NullString
		createdAt dbTime
		token     string
		sshKey    string
	)
	if err := row.Scan(&u.ID, &u.Username, &u.GlobalRole, &email, &u.Active, &createdAt,
		&u.TokenHash, &token, &u.SSHPublicKey, &sshKey); err != nil {
		return nil, err
	}
	if email.Valid {
		u.Email = &email.String
	}
	u.CreatedAt = createdAt.t
	var err error
	if u.Token, err = s.kr.Decrypt(token); err != nil {
		return nil, fmt.Errorf("user %q: token: %w", u.Username, err)
	}
	if u.SSHPrivateKey, err = s.kr.Decrypt(sshKey); err != nil {
		return nil, fmt.Errorf("user %q: SSH private key: %w", u.Username, err)
	}
	return &u, nil
}

// liveIDsByName returns the IDs of the live rows of table whose nameCol matches one of names, ignoring
// case. If some name matches no row, the error (ErrNotFound) lists the unknown names as `what`.
func (s *Store) liveIDsByName(ctx context.Context, table, nameCol, what string, names []string) ([]string, error) {
	lowered := strings.TrimSuffix(strings.Repeat("lower(?), ", len(names)), ", ")
	rows, err := s.query(ctx, `SELECT id, `+nameCol+` FROM `+table+` WHERE NOT deleted AND lower(`+nameCol+`) IN (`+lowered+`)`,
		stringArgs(names)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids, found []string
	for rows.Next() {
		var id, name string
		if err := rows.Scan(&id, &name); err != nil {
			return nil, err
		}
		ids = append(ids, id)
		found = append(found, name)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if missing := missingNames(names, found); len(missing) > 0 {
		return nil, fmt.Errorf("%s %s: %w", what, quoteList(missing), ErrNotFound)
	}
	return ids, nil
}

func nullString(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}
