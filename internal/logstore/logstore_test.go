package logstore

import (
	"os"
	"strconv"
	"testing"
	"time"
)

func TestAppendPoll(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	k := Key{Project: "main", Run: "r", Submission: "s1", Kind: Job}
	base := time.Unix(1700000000, 0).UTC()
	var events []Event
	for i := range 5 {
		events = append(events, Event{Timestamp: base.Add(time.Duration(i) * time.Second), Source: Stdout, Message: []byte("line " + strconv.Itoa(i) + "\n")})
	}
	if err := s.Append(k, events[:3]); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(k, events[3:]); err != nil {
		t.Fatal(err)
	}
	got, next, err := s.Poll(k, Query{Limit: 2})
	if err != nil || len(got) != 2 || next == "" || string(got[1].Message) != "line 1\n" {
		t.Fatalf("page 1: %v %q %v", got, next, err)
	}
	got, next, err = s.Poll(k, Query{Limit: 2, NextToken: next})
	if err != nil || len(got) != 2 || string(got[0].Message) != "line 2\n" {
		t.Fatalf("page 2: %v %q %v", got, next, err)
	}
	got, next, _ = s.Poll(k, Query{Limit: 2, NextToken: next})
	if len(got) != 1 || next != "" {
		t.Fatalf("page 3: %v %q", got, next)
	}
	start := base.Add(3 * time.Second)
	got, _, _ = s.Poll(k, Query{Start: &start, Descending: true})
	if len(got) != 2 || string(got[0].Message) != "line 4\n" {
		t.Fatalf("descending from start: %v", got)
	}
	// A half-written last line is skipped; unknown logs and names are empty.
	p, _ := s.path(k)
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"timestamp":"2023`)
	f.Close()
	if got, _, err := s.Poll(k, Query{}); err != nil || len(got) != 5 {
		t.Fatalf("partial line: %d %v", len(got), err)
	}
	if got, _, err := s.Poll(Key{Project: "main", Run: "../x", Submission: "s", Kind: Job}, Query{}); err != nil || got != nil {
		t.Fatal("traversal")
	}
	if _, _, err := s.Poll(k, Query{NextToken: "x"}); err != ErrBadToken {
		t.Fatal(err)
	}
}
