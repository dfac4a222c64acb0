// Package models holds the server's domain records: what the store keeps and the API shapes are built from.
package models

import "time"

// Global roles.
const (
	GlobalRoleAdmin = "admin"
	GlobalRoleUser  = "user"
)

// Project roles.
const (
	ProjectRoleAdmin   = "admin"
	ProjectRoleManager = "manager"
	ProjectRoleUser    = "user"
)

// Backend credential-check states.
const (
	BackendValid     = "valid"     // the provider accepted the credentials
	BackendInvalid   = "invalid"   // the provider (or the config) refused them; StatusMessage says why
	BackendUnchecked = "unchecked" // this build has no credential check for the type yet
)

// User is a person or robot with an API token. Token and SSHPrivateKey are plaintext in memory and
// encrypted at rest; TokenHash (sha256 hex of Token) is what requests are looked up by.
type User struct {
	ID            string
	Username      string
	GlobalRole    string
	Email         *string
	Active        bool
	CreatedAt     time.Time
	Token         string
	TokenHash     string
	SSHPublicKey  string
	SSHPrivateKey string
}

// Project groups backends, members and (later) runs and fleets.
type Project struct {
	ID            string
	Name          string
	OwnerID       string
	CreatedAt     time.Time
	SSHPublicKey  string
	SSHPrivateKey string
	IsPublic      bool
}

// Member is a user's role in a project.
type Member struct {
	ProjectID string
	UserID    string
	Role      string
}

// Backend is one configured provider of a project: at most one per (project, type).
// Config is the JSON of the non-secret fields; Auth is the JSON of the secret ones (creds, kubeconfig),
// plaintext in memory and encrypted at rest.
type Backend struct {
	ID            string
	ProjectID     string
	Type          string
	Config        string
	Auth          string
	Status        string
	StatusMessage string
	CheckedAt     *time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
}
