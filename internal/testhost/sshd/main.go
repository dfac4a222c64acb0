// Command sshd is the SSH server of test hosts (see package testhost): it accepts the keys in
// $SSHD_AUTHORIZED_KEYS (authorized_keys format) and those of ~/.ssh/authorized_keys, generates a host key at start, runs exec requests with
// /bin/sh and forwards direct-tcpip channels. It is built statically and runs as the entrypoint of a
// FROM-scratch container.
package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/dstackgo/dstack/internal/testhost/sshserver"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sshd:", err)
		os.Exit(1)
	}
}

func run() error {
	keys, err := sshserver.ParseAuthorizedKeys([]byte(os.Getenv("SSHD_AUTHORIZED_KEYS")))
	if err != nil {
		return fmt.Errorf("SSHD_AUTHORIZED_KEYS: %w", err)
	}
	hostKey, err := sshserver.NewKey()
	if err != nil {
		return err
	}
	addr := os.Getenv("SSHD_ADDR")
	if addr == "" {
		addr = ":22"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// Commands must not see the server's own settings.
	os.Unsetenv("SSHD_AUTHORIZED_KEYS")
	os.Unsetenv("SSHD_ADDR")
	home, _ := os.UserHomeDir()
	srv := &sshserver.Server{HostKey: hostKey.Signer, AuthorizedKeys: keys,
		AuthorizedKeysFile: filepath.Join(home, ".ssh", "authorized_keys"),
		Log:                slog.New(slog.NewTextHandler(os.Stderr, nil))}
	return srv.Serve(ln)
}
