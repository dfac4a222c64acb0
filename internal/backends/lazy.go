package backends

import "sync"

// Lazy holds a value built on first use, such as a provider session whose credentials are read and
// whose clients are made once per config. A build that fails is tried again by the next Get.
type Lazy[T any] struct {
	mu  sync.Mutex
	v   T
	set bool
}

// Get returns the value, building it with build the first time (or after a failed build).
func (l *Lazy[T]) Get(build func() (T, error)) (T, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.set {
		v, err := build()
		if err != nil {
			return v, err
		}
		l.v, l.set = v, true
	}
	return l.v, nil
}
