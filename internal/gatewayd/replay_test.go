package gatewayd

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestReplayBody(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 8<<10) // 128 KiB, more than maxReplay
	b := &replayBody{src: bytes.NewReader(data)}
	v1, _ := b.view()
	head := make([]byte, 40<<10)
	if _, err := io.ReadFull(v1, head); err != nil {
		t.Fatal(err)
	}
	// A second attempt reads the whole body from the start.
	v2, err := b.view()
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(v2)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("replayed %d bytes (%v), want %d", len(got), err, len(data))
	}
	// The first view cannot go on behind it, and past maxReplay nothing can start over.
	if _, err := v1.Read(head); !errors.Is(err, errTooLateToReplay) {
		t.Fatalf("stale view: %v", err)
	}
	if _, err := b.view(); !errors.Is(err, errTooLateToReplay) {
		t.Fatalf("view after %d bytes: %v", len(data), err)
	}
}
