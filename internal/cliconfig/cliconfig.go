// Package cliconfig reads and writes the CLI's own configuration, ~/.dstack/config.yml, in the format of
// dstack 0.21: a list of projects (name, server URL, token, default flag) and a list of repos.
//
// Only the projects list is interpreted. Everything else in the file (repos, keys written by other
// dstack versions) is kept as it was, in its original order, when the file is rewritten.
package cliconfig

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/goccy/go-yaml"
)

// ErrNotFound is returned (wrapped) when a named project is not in the config.
var ErrNotFound = errors.New("project not found in the CLI config")

// Project is one entry of the projects list.
type Project struct {
	Name    string `yaml:"name" json:"name"`
	URL     string `yaml:"url" json:"url"`
	Token   string `yaml:"token" json:"-"`
	Default bool   `yaml:"default" json:"default"`
}

// Config is the parsed file. Projects may be read and changed directly; the helpers keep the
// at-most-one-default rule.
type Config struct {
	Projects []Project

	path string
	rest yaml.MapSlice // every top-level item of the file as read; "projects" is replaced on Save
}

// Path returns the file's location, ~/.dstack/config.yml.
func Path() string {
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		home = "."
	}
	return filepath.Join(home, ".dstack", "config.yml")
}

// Load reads the file at Path. A missing file gives an empty config, not an error.
func Load() (*Config, error) {
	return LoadFile(Path())
}

// LoadFile reads a config from path. A missing file gives an empty config, not an error.
func LoadFile(path string) (*Config, error) {
	c := &Config{path: path}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read CLI config: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return c, nil
	}
	if err := yaml.UnmarshalWithOptions(data, &c.rest, yaml.UseOrderedMap()); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	var typed struct {
		Projects []Project `yaml:"projects"`
	}
	if err := yaml.Unmarshal(data, &typed); err != nil {
		return nil, fmt.Errorf("parse %s: projects: %w", path, err)
	}
	c.Projects = typed.Projects
	return c, nil
}

// File is the path this config is read from and saved to.
func (c *Config) File() string {
	if c.path == "" {
		return Path()
	}
	return c.path
}

// Save writes the config back: the directory with mode 0700, the file with mode 0600, replaced atomically.
func (c *Config) Save() error {
	path := c.File()
	projects := c.Projects
	if projects == nil {
		projects = []Project{}
	}
	out := make(yaml.MapSlice, 0, len(c.rest)+1)
	replaced := false
	for _, it := range c.rest {
		if k, ok := it.Key.(string); ok && k == "projects" {
			it.Value = projects
			replaced = true
		}
		out = append(out, it)
	}
	if !replaced {
		out = append(yaml.MapSlice{{Key: "projects", Value: projects}}, out...)
	}
	data, err := yaml.MarshalWithOptions(out, yaml.IndentSequence(false))
	if err != nil {
		return fmt.Errorf("encode CLI config: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".config.yml.*")
	if err != nil {
		return fmt.Errorf("write CLI config: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write CLI config: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write CLI config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write CLI config: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write CLI config: %w", err)
	}
	c.rest = out
	return nil
}

func (c *Config) index(name string) int {
	for i := range c.Projects {
		if c.Projects[i].Name == name {
			return i
		}
	}
	return -1
}

// Get returns the project with the given name.
func (c *Config) Get(name string) (*Project, bool) {
	i := c.index(name)
	if i < 0 {
		return nil, false
	}
	p := c.Projects[i]
	return &p, true
}

// Default returns the default project: the one marked default, or the only project when there is
// just one and none is marked.
func (c *Config) Default() (*Project, bool) {
	for i := range c.Projects {
		if c.Projects[i].Default {
			p := c.Projects[i]
			return &p, true
		}
	}
	if len(c.Projects) == 1 {
		p := c.Projects[0]
		return &p, true
	}
	return nil, false
}

// Upsert adds p, or replaces the project of the same name in place. It becomes the default when
// makeDefault is set or when no project is the default yet (so the first project added is the default);
// a replaced project keeps its default mark otherwise. p.Default itself is ignored.
func (c *Config) Upsert(p Project, makeDefault bool) {
	hasDefault := false
	for _, q := range c.Projects {
		if q.Default && q.Name != p.Name {
			hasDefault = true
		}
	}
	i := c.index(p.Name)
	wasDefault := i >= 0 && c.Projects[i].Default
	p.Default = makeDefault || wasDefault || !hasDefault
	if i >= 0 {
		c.Projects[i] = p
	} else {
		c.Projects = append(c.Projects, p)
		i = len(c.Projects) - 1
	}
	if p.Default {
		c.only(i)
	}
}

// only marks project i as the default and clears the mark on the others.
func (c *Config) only(i int) {
	for j := range c.Projects {
		c.Projects[j].Default = j == i
	}
}

// SetDefault makes the named project the default.
func (c *Config) SetDefault(name string) error {
	i := c.index(name)
	if i < 0 {
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	c.only(i)
	return nil
}

// Delete removes the named project. When the default is deleted and one project remains, that one
// becomes the default; with several remaining, none is marked until SetDefault.
func (c *Config) Delete(name string) error {
	i := c.index(name)
	if i < 0 {
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	wasDefault := c.Projects[i].Default
	c.Projects = append(c.Projects[:i], c.Projects[i+1:]...)
	if wasDefault && len(c.Projects) == 1 {
		c.Projects[0].Default = true
	}
	return nil
}
