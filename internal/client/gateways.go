package client

import (
	"context"
	"time"
)

// Gateway is the API's Gateway, with what the CLI shows.
type Gateway struct {
	ID             string  `json:"id"`
	Name           string  `json:"name"`
	Status         string  `json:"status"`
	StatusMessage  *string `json:"status_message"`
	Hostname       *string `json:"hostname"`
	IPAddress      *string `json:"ip_address"`
	WildcardDomain *string `json:"wildcard_domain"`
	Default        bool    `json:"default"`
	Backend        string  `json:"backend"`
	Region         string  `json:"region"`
	InstanceID     *string `json:"instance_id"`
	Configuration  struct {
		Certificate *struct {
			Type string `json:"type"`
		} `json:"certificate"`
	} `json:"configuration"`
	CreatedAt time.Time `json:"created_at"`
}

// ListGateways lists the project's gateways.
func (c *Client) ListGateways(ctx context.Context, project string) ([]Gateway, error) {
	var out []Gateway
	err := c.Do(ctx, "/api/project/"+project+"/gateways/list", map[string]any{"include_imported": true}, &out)
	return out, err
}

// GetGateway finds a gateway by name.
func (c *Client) GetGateway(ctx context.Context, project, name string) (*Gateway, error) {
	var out Gateway
	if err := c.Do(ctx, "/api/project/"+project+"/gateways/get", map[string]any{"name": name}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateGateway submits a gateway configuration.
func (c *Client) CreateGateway(ctx context.Context, project string, conf map[string]any) (*Gateway, error) {
	var out Gateway
	if err := c.Do(ctx, "/api/project/"+project+"/gateways/create", map[string]any{"configuration": conf}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteGateways deletes gateways by name.
func (c *Client) DeleteGateways(ctx context.Context, project string, names []string) error {
	return c.Do(ctx, "/api/project/"+project+"/gateways/delete", map[string]any{"names": names}, nil)
}

// SetDefaultGateway makes a gateway the project's default.
func (c *Client) SetDefaultGateway(ctx context.Context, project, name string) error {
	return c.Do(ctx, "/api/project/"+project+"/gateways/set_default", map[string]any{"name": name}, nil)
}

// SetGatewayDomain sets a gateway's wildcard domain.
func (c *Client) SetGatewayDomain(ctx context.Context, project, name, domain string) error {
	return c.Do(ctx, "/api/project/"+project+"/gateways/set_wildcard_domain",
		map[string]any{"name": name, "wildcard_domain": domain}, nil)
}
