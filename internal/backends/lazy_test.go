package backends

import (
	"errors"
	"testing"
)

func TestLazy(t *testing.T) {
	var l Lazy[int]
	builds := 0
	fail := errors.New("no credentials yet")
	build := func() (int, error) {
		builds++
		if builds == 1 {
			return 0, fail
		}
		return 42, nil
	}
	if _, err := l.Get(build); !errors.Is(err, fail) {
		t.Fatalf("first build: %v", err)
	}
	for range 3 {
		if v, err := l.Get(build); err != nil || v != 42 {
			t.Fatalf("Get = %v, %v", v, err)
		}
	}
	if builds != 2 {
		t.Fatalf("%d builds: a failed build is retried once, a good one kept", builds)
	}
}
