// Package logstore keeps the output of jobs as dstack's file log storage does: one file per job
// submission and kind, <dir>/projects/<project>/logs/<run>/<submission id>/{job,runner}.log, one JSON
// event per line ({"timestamp", "log_source", "message"} with the message in base64).
//
// Each file has a single writer, the server replica holding the job's lease; readers may see a
// partly written last line, which they skip.
package logstore

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kinds of log.
const (
	Job    = "job"    // the job's stdout and stderr
	Runner = "runner" // the runner's own log (`dstack logs --diagnose`)
)

// Log sources of an event.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// Event is one chunk of output.
type Event struct {
	Timestamp time.Time `json:"timestamp"`
	Source    string    `json:"log_source"`
	Message   []byte    `json:"message"` // base64 in JSON
}

// Store is a log directory; the zero value (no Dir) keeps nothing.
type Store struct {
	Dir string

	mu sync.Mutex // serialises appends within this process
}

// Key names one log.
type Key struct {
	Project, Run, Submission, Kind string
}

func (s *Store) path(k Key) (string, error) {
	for _, part := range []string{k.Project, k.Run, k.Submission} {
		if part == "" || part == "." || part == ".." || strings.ContainsAny(part, `/\`) {
			return "", fmt.Errorf("invalid log name %q", part)
		}
	}
	if k.Kind != Job && k.Kind != Runner {
		return "", fmt.Errorf("invalid log kind %q", k.Kind)
	}
	return filepath.Join(s.Dir, "projects", k.Project, "logs", k.Run, k.Submission, k.Kind+".log"), nil
}

// Append adds events to a log.
func (s *Store) Append(k Key, events []Event) error {
	if s.Dir == "" || len(events) == 0 {
		return nil
	}
	p, err := s.path(k)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, e := range events {
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		b.Write(data)
		b.WriteByte('\n')
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Query selects events of a log.
type Query struct {
	Start, End *time.Time // inclusive bounds; nil: open
	Descending bool
	Limit      int    // 0: no limit
	NextToken  string // from the previous page
}

// ErrBadToken is a NextToken this store did not hand out.
var ErrBadToken = errors.New("invalid next_token")

// Poll returns the events of a log matching q, and the token of the next page ("" when there is
// none). A log that does not exist has no events.
func (s *Store) Poll(k Key, q Query) ([]Event, string, error) {
	if s.Dir == "" {
		return nil, "", nil
	}
	skip := 0
	if q.NextToken != "" {
		n, err := strconv.Atoi(q.NextToken)
		if err != nil || n < 0 {
			return nil, "", ErrBadToken
		}
		skip = n
	}
	p, err := s.path(k)
	if err != nil {
		return nil, "", nil // no such run can have logs
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	var all []Event
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var e Event
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue // a line being written
		}
		if q.Start != nil && e.Timestamp.Before(*q.Start) || q.End != nil && e.Timestamp.After(*q.End) {
			continue
		}
		all = append(all, e)
	}
	if err := sc.Err(); err != nil {
		return nil, "", err
	}
	if q.Descending {
		slices.Reverse(all)
	}
	if skip >= len(all) {
		return nil, "", nil
	}
	all = all[skip:]
	next := ""
	if q.Limit > 0 && len(all) > q.Limit {
		all = all[:q.Limit]
		next = strconv.Itoa(skip + q.Limit)
	}
	return all, next, nil
}

// Last is the timestamp of the last complete event of a log (zero when it has none), so that a
// writer resuming after a crash appends only newer events.
func (s *Store) Last(k Key) (time.Time, error) {
	if s.Dir == "" {
		return time.Time{}, nil
	}
	p, err := s.path(k)
	if err != nil {
		return time.Time{}, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return time.Time{}, err
	}
	// Events are small; the last complete line is within the tail unless a chunk is huge, in which
	// case the tail is widened.
	for size := int64(64 << 10); ; size *= 4 {
		off := max(0, st.Size()-size)
		buf := make([]byte, st.Size()-off)
		if _, err := f.ReadAt(buf, off); err != nil {
			return time.Time{}, err
		}
		lines := strings.Split(string(buf), "\n")
		for i := len(lines) - 1; i >= 0; i-- {
			if i == 0 && off > 0 {
				break // possibly cut
			}
			var e Event
			if json.Unmarshal([]byte(lines[i]), &e) == nil {
				return e.Timestamp, nil
			}
		}
		if off == 0 {
			return time.Time{}, nil
		}
	}
}
