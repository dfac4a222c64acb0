package client

import (
	"context"
	"time"
)

// Volume is the API's Volume, with what the CLI shows.
type Volume struct {
	ID            string  `json:"id"`
	Name          string  `json:"name"`
	ProjectName   string  `json:"project_name"`
	Status        string  `json:"status"`
	StatusMessage *string `json:"status_message"`
	External      bool    `json:"external"`
	Configuration struct {
		Backend string `json:"backend"`
		Region  string `json:"region"`
	} `json:"configuration"`
	ProvisioningData *struct {
		VolumeID         string   `json:"volume_id"`
		SizeGB           int      `json:"size_gb"`
		AvailabilityZone *string  `json:"availability_zone"`
		Price            *float64 `json:"price"`
	} `json:"provisioning_data"`
	Attachments []struct {
		Instance struct {
			Name string `json:"name"`
		} `json:"instance"`
	} `json:"attachments"`
	CreatedAt time.Time `json:"created_at"`
}

// ListVolumes lists the project's volumes.
func (c *Client) ListVolumes(ctx context.Context, project string) ([]Volume, error) {
	var out []Volume
	err := c.Do(ctx, "/api/project/"+project+"/volumes/list", nil, &out)
	return out, err
}

// GetVolume finds a volume by name.
func (c *Client) GetVolume(ctx context.Context, project, name string) (*Volume, error) {
	var out Volume
	if err := c.Do(ctx, "/api/project/"+project+"/volumes/get", map[string]any{"name": name}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateVolume submits a volume configuration.
func (c *Client) CreateVolume(ctx context.Context, project string, conf map[string]any) (*Volume, error) {
	var out Volume
	if err := c.Do(ctx, "/api/project/"+project+"/volumes/create", map[string]any{"configuration": conf}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteVolumes deletes volumes by name.
func (c *Client) DeleteVolumes(ctx context.Context, project string, names []string) error {
	return c.Do(ctx, "/api/project/"+project+"/volumes/delete", map[string]any{"names": names}, nil)
}
