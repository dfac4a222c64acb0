package gatewayd

import (
	"errors"
	"io"
	"sync"
)

// maxReplay bounds the part of a request body kept to send it again. The transport reads at most
// its write buffer and one copy buffer (4 KiB + 32 KiB) before it learns that a connection is dead.
const maxReplay = 64 << 10

var errTooLateToReplay = errors.New("the request body was already sent in part and cannot be sent again")

// replayBody lets a request go out again when an attempt failed before anything reached the wire: a
// kept-alive connection whose host just went away (the transport then retries on a new connection
// through GetBody), or a replica that cannot be reached (the next one gets the request).
type replayBody struct {
	src io.Reader

	mu   sync.Mutex
	kept []byte // the bytes read from src, while there are at most maxReplay
	read int    // bytes read from src
}

// view reads the body from its start: first the kept bytes, then the rest of src. Attempts take
// turns, so only one view reads at a time.
func (b *replayBody) view() (io.ReadCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.read > maxReplay {
		return nil, errTooLateToReplay
	}
	return &bodyView{b: b}, nil
}

type bodyView struct {
	b   *replayBody
	pos int
}

func (v *bodyView) Read(p []byte) (int, error) {
	b := v.b
	b.mu.Lock()
	if v.pos < len(b.kept) {
		n := copy(p, b.kept[v.pos:])
		v.pos += n
		b.mu.Unlock()
		return n, nil
	}
	if v.pos != b.read {
		b.mu.Unlock()
		return 0, errTooLateToReplay // another attempt went further
	}
	b.mu.Unlock()
	n, err := b.src.Read(p) // unlocked: the client may be slow to send
	b.mu.Lock()
	defer b.mu.Unlock()
	b.read += n
	v.pos += n
	if b.read <= maxReplay {
		b.kept = append(b.kept, p[:n]...)
	} else {
		b.kept = nil
	}
	return n, err
}

// Close leaves the client's body open for another attempt; the server closes it after the request.
func (v *bodyView) Close() error { return nil }
