package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/dstackgo/dstack/internal/models"
)

const projectCols = "id, name, owner_id, created_at, ssh_public_key, ssh_private_key, is_public"

// CreateProject inserts p, filling ID and CreatedAt when empty, and makes its owner (a live user)
// the project's admin, in one transaction. A live project with the same name in any case is ErrExists.
func (s *Store) CreateProject(ctx context.Context, p *models.Project) error {
	sshKey, err := s.encrypt(p.SSHPrivateKey)
	if err != nil {
		return fmt.Errorf("create project %q: %w", p.Name, err)
	}
	return s.WithTx(ctx, func(tx *Store) error {
		if err := tx.checkLiveUser(ctx, p.OwnerID); err != nil {
			return fmt.Errorf("create project %q: owner: %w", p.Name, err)
		}
		if p.ID == "" {
			p.ID = uuid.NewString()
		}
		p.CreatedAt = stamp(p.CreatedAt)
		_, err := tx.exec(ctx, `INSERT INTO projects (`+projectCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			p.ID, p.Name, p.OwnerID, tx.timeArg(&p.CreatedAt), p.SSHPublicKey, sshKey, p.IsPublic)
		if isUniqueViolation(err) {
			return fmt.Errorf("project %q: %w", p.Name, ErrExists)
		}
		if err != nil {
			return fmt.Errorf("create project %q: %w", p.Name, err)
		}
		_, err = tx.exec(ctx, `INSERT INTO members (project_id, user_id, project_role, member_num) VALUES (?, ?, ?, 0)`,
			p.ID, p.OwnerID, models.ProjectRoleAdmin)
		return err
	})
}

// GetProject finds a live project by name, ignoring case.
func (s *Store) GetProject(ctx context.Context, name string) (*models.Project, error) {
	p, err := s.scanProject(s.queryRow(ctx, `SELECT `+projectCols+` FROM projects WHERE lower(name) = lower(?) AND NOT deleted`, name))
	return p, notFound(err, fmt.Sprintf("project %q", name))
}

// GetProjectByID finds a live project by ID.
func (s *Store) GetProjectByID(ctx context.Context, id string) (*models.Project, error) {
	p, err := s.scanProject(s.queryRow(ctx, `SELECT `+projectCols+` FROM projects WHERE id = ? AND NOT deleted`, id))
	return p, notFound(err, fmt.Sprintf("project with id %q", id))
}

// ListProjects returns the live projects, oldest first.
func (s *Store) ListProjects(ctx context.Context) ([]*models.Project, error) {
	rows, err := s.query(ctx, `SELECT `+projectCols+` FROM projects WHERE NOT deleted ORDER BY created_at, name`)
	return collect(rows, err, s.scanProject)
}

// ListProjectsForUser returns the live projects the user is a member of, oldest first.
func (s *Store) ListProjectsForUser(ctx context.Context, userID string) ([]*models.Project, error) {
	rows, err := s.query(ctx, `SELECT p.id, p.name, p.owner_id, p.created_at, p.ssh_public_key, p.ssh_private_key, p.is_public
		FROM projects p JOIN members m ON m.project_id = p.id
		WHERE m.user_id = ? AND NOT p.deleted ORDER BY p.created_at, p.name`, userID)
	return collect(rows, err, s.scanProject)
}

// DeleteProjects soft-deletes the named projects (ignoring case) and removes their members and
// backends. If any name is unknown, nothing is deleted and the error (ErrNotFound) lists them.
func (s *Store) DeleteProjects(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	return s.WithTx(ctx, func(tx *Store) error {
		ids, err := tx.liveIDsByName(ctx, "projects", "name", "projects", names)
		if err != nil {
			return err
		}
		in, args := "("+placeholders(len(ids))+")", stringArgs(ids)
		for _, q := range []string{
			`DELETE FROM members WHERE project_id IN ` + in,
			`DELETE FROM backends WHERE project_id IN ` + in,
			`UPDATE projects SET deleted = TRUE WHERE id IN ` + in,
		} {
			if _, err := tx.exec(ctx, q, args...); err != nil {
				return err
			}
		}
		return nil
	})
}

// SetMembers replaces the project's members with members, in one transaction; ListMembers returns
// them in this order. Each member's ProjectID is ignored. Unknown or deleted users are ErrNotFound.
func (s *Store) SetMembers(ctx context.Context, projectID string, members []models.Member) error {
	return s.WithTx(ctx, func(tx *Store) error {
		if err := tx.checkLiveProject(ctx, projectID); err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `DELETE FROM members WHERE project_id = ?`, projectID); err != nil {
			return err
		}
		seen := map[string]bool{}
		for i, m := range members {
			if seen[m.UserID] {
				return fmt.Errorf("set members: user with id %q is listed twice", m.UserID)
			}
			seen[m.UserID] = true
			if err := tx.checkLiveUser(ctx, m.UserID); err != nil {
				return fmt.Errorf("set members: %w", err)
			}
			if _, err := tx.exec(ctx, `INSERT INTO members (project_id, user_id, project_role, member_num) VALUES (?, ?, ?, ?)`,
				projectID, m.UserID, m.Role, i); err != nil {
				return err
			}
		}
		return nil
	})
}

// ListMembers returns the project's members in the order SetMembers was given them.
func (s *Store) ListMembers(ctx context.Context, projectID string) ([]models.Member, error) {
	rows, err := s.query(ctx, `SELECT project_id, user_id, project_role FROM members WHERE project_id = ? ORDER BY member_num`, projectID)
	return collect(rows, err, scanMember)
}

// GetMember returns the user's membership of the project, or ErrNotFound if the user is not a member.
func (s *Store) GetMember(ctx context.Context, projectID, userID string) (models.Member, error) {
	m, err := scanMember(s.queryRow(ctx, `SELECT project_id, user_id, project_role FROM members WHERE project_id = ? AND user_id = ?`,
		projectID, userID))
	return m, notFound(err, fmt.Sprintf("member with user id %q", userID))
}

func scanMember(row scanner) (models.Member, error) {
	var m models.Member
	err := row.Scan(&m.ProjectID, &m.UserID, &m.Role)
	return m, err
}

func (s *Store) scanProject(row scanner) (*models.Project, error) {
	var (
		p         models.Project
		createdAt dbTime
		sshKey    string
	)
	if err := row.Scan(&p.ID, &p.Name, &p.OwnerID, &createdAt, &p.SSHPublicKey, &sshKey, &p.IsPublic); err != nil {
		return nil, err
	}
	p.CreatedAt = createdAt.t
	var err error
	if p.SSHPrivateKey, err = s.kr.Decrypt(sshKey); err != nil {
		return nil, fmt.Errorf("project %q: SSH private key: %w", p.Name, err)
	}
	return &p, nil
}

func (s *Store) checkLiveUser(ctx context.Context, id string) error {
	var one int
	err := s.queryRow(ctx, `SELECT 1 FROM users WHERE id = ? AND NOT deleted`, id).Scan(&one)
	return notFound(err, fmt.Sprintf("user with id %q", id))
}

func (s *Store) checkLiveProject(ctx context.Context, id string) error {
	var one int
	err := s.queryRow(ctx, `SELECT 1 FROM projects WHERE id = ? AND NOT deleted`, id).Scan(&one)
	return notFound(err, fmt.Sprintf("project with id %q", id))
}
