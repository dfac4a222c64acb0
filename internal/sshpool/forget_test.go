package sshpool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/dstackgo/dstack/internal/testhost/sshserver"
)

// TestForgetAfterAddressReuse: a machine that takes over a gone machine's address presents another
// host key; Close keeps the key seen for the address (and refuses the new one), Forget drops it.
func TestForgetAfterAddressReuse(t *testing.T) {
	k := newKey(t)
	first := startHost(t, k)
	p := New()
	defer p.CloseAll()
	tg := target(first, k)
	if _, err := p.Run(context.Background(), tg, "true", nil); err != nil {
		t.Fatal(err)
	}
	p.Close(tg)
	first.srv.Close()
	// Another machine, with its own host key, on the same address.
	srv := &sshserver.Server{HostKey: newKey(t).Signer, AuthorizedKeys: []ssh.PublicKey{k.Signer.PublicKey()}}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", first.port))
	if err != nil {
		t.Skipf("the address cannot be listened on again: %v", err)
	}
	go srv.Serve(ln)
	t.Cleanup(srv.Close)
	var mm *HostKeyMismatchError
	if _, err := p.Run(context.Background(), tg, "true", nil); !errors.As(err, &mm) {
		t.Fatalf("after Close: %v, want a host key mismatch", err)
	}
	p.Forget(tg)
	if _, err := p.Run(context.Background(), tg, "true", nil); err != nil {
		t.Fatalf("after Forget: %v", err)
	}
}
