package shim

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// hostKeys edits a host user's ~/.ssh/authorized_keys: host_ssh_keys of a task are added while the
// task exists (the server uses them to jump through the host into the container).
type hostKeys struct {
	mu sync.Mutex
	// path returns the authorized_keys file of a user and the owner to give a new file.
	path func(username string) (file string, uid, gid int, err error)
}

func defaultAuthorizedKeysPath(username string) (string, int, int, error) {
	u, err := user.Lookup(username)
	if err != nil {
		return "", 0, 0, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return filepath.Join(u.HomeDir, ".ssh", "authorized_keys"), uid, gid, nil
}

func readLines(path string) ([]string, os.FileMode, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, 0o600, nil
	}
	if err != nil {
		return nil, 0, err
	}
	mode := os.FileMode(0o600)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	return strings.Split(strings.TrimRight(string(data), "\n"), "\n"), mode, nil
}

// add appends the keys that are not in the file yet and returns those it added.
func (h *hostKeys) add(username string, keys []string) ([]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	path, uid, gid, err := h.path(username)
	if err != nil {
		return nil, err
	}
	lines, mode, err := readLines(path)
	if err != nil {
		return nil, err
	}
	present := map[string]bool{}
	for _, l := range lines {
		present[strings.TrimSpace(l)] = true
	}
	var added []string
	for _, k := range keys {
		k = strings.TrimSpace(k)
		if k != "" && !present[k] {
			added = append(added, k)
			present[k] = true
		}
	}
	if len(added) == 0 {
		return nil, nil
	}
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		_ = os.Chown(dir, uid, gid)
	}
	var kept []string
	for _, l := range lines {
		if l != "" {
			kept = append(kept, l)
		}
	}
	if err := writeLines(path, append(kept, added...), mode, uid, gid); err != nil {
		return nil, err
	}
	return added, nil
}

// remove deletes exactly the given key lines.
func (h *hostKeys) remove(username string, keys []string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	path, uid, gid, err := h.path(username)
	if err != nil {
		return err
	}
	lines, mode, err := readLines(path)
	if err != nil || lines == nil {
		return err
	}
	drop := map[string]bool{}
	for _, k := range keys {
		drop[strings.TrimSpace(k)] = true
	}
	var kept []string
	for _, l := range lines {
		if !drop[strings.TrimSpace(l)] && l != "" {
			kept = append(kept, l)
		}
	}
	return writeLines(path, kept, mode, uid, gid)
}

func writeLines(path string, lines []string, mode os.FileMode, uid, gid int) error {
	content := strings.Join(lines, "\n")
	if content != "" {
		content += "\n"
	}
	tmp := path + ".dstack-tmp"
	if err := os.WriteFile(tmp, []byte(content), mode); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	_ = os.Chown(tmp, uid, gid)
	return os.Rename(tmp, path)
}
