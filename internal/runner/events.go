package runner

import (
	"sort"
	"sync"
	"time"

	"github.com/dstackgo/dstack/internal/agentapi"
)

// Pull limits: one answer carries at most this many log events or about this many bytes of messages;
// has_more asks the caller to pull again at once.
var (
	pullMaxEvents = 1000
	pullMaxBytes  = 1 << 20
)

// events keeps the job's state changes, job output and runner logs. Every event gets a Unix-ms
// timestamp strictly greater than the one before it, across the three lists, so "everything newer than
// T" is exact and a pull cut short by its limits resumes without losing or repeating anything.
type events struct {
	mu         sync.Mutex
	last       int64
	states     []agentapi.JobStateEvent
	jobLogs    []agentapi.LogEvent
	runnerLogs []agentapi.LogEvent
	closed     bool          // no job output will follow (the job finished)
	changed    chan struct{} // closed and replaced on every change
	now        func() time.Time
}

func newEvents() *events {
	return &events{changed: make(chan struct{}), now: time.Now}
}

// next returns the next timestamp; e.mu is held.
func (e *events) next() int64 {
	ts := e.now().UnixMilli()
	if ts <= e.last {
		ts = e.last + 1
	}
	e.last = ts
	return ts
}

func (e *events) notify() {
	close(e.changed)
	e.changed = make(chan struct{})
}

// Changed returns a channel closed at the next change.
func (e *events) Changed() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.changed
}

func (e *events) addJobLog(stream string, msg []byte) {
	if len(msg) == 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.jobLogs = append(e.jobLogs, agentapi.LogEvent{Message: append([]byte(nil), msg...), Timestamp: e.next(), Stream: stream})
	e.notify()
}

func (e *events) addRunnerLog(msg []byte) {
	if len(msg) == 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.runnerLogs = append(e.runnerLogs, agentapi.LogEvent{Message: append([]byte(nil), msg...), Timestamp: e.next()})
	e.notify()
}

// addState records a state change; a final state also closes the job output.
func (e *events) addState(ev agentapi.JobStateEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ev.Timestamp = e.next()
	e.states = append(e.states, ev)
	if ev.State.Finished() {
		e.closed = true
	}
	e.notify()
}

// lastState returns the latest state event, if any.
func (e *events) lastState() (agentapi.JobStateEvent, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.states) == 0 {
		return agentapi.JobStateEvent{}, false
	}
	return e.states[len(e.states)-1], true
}

// after returns the index of the first event newer than ts in a list sorted by timestamp.
func after[T any](list []T, ts int64, stamp func(T) int64) int {
	return sort.Search(len(list), func(i int) bool { return stamp(list[i]) > ts })
}

func logStamp(l agentapi.LogEvent) int64        { return l.Timestamp }
func stateStamp(s agentapi.JobStateEvent) int64 { return s.Timestamp }

// pull returns everything newer than since, at most pullMaxEvents log events and about pullMaxBytes,
// and whether the answer holds the final state and nothing is left after it.
func (e *events) pull(since int64) (resp agentapi.PullResponse, complete bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	si := after(e.states, since, stateStamp)
	ji := after(e.jobLogs, since, logStamp)
	ri := after(e.runnerLogs, since, logStamp)
	resp = agentapi.PullResponse{
		JobStates:   []agentapi.JobStateEvent{},
		JobLogs:     []agentapi.LogEvent{},
		RunnerLogs:  []agentapi.LogEvent{},
		LastUpdated: since,
	}
	count, size := 0, 0
	// Merge the three lists in timestamp order until a limit is reached.
	for {
		const none = int64(1<<63 - 1)
		ts, which := none, -1
		if si < len(e.states) && e.states[si].Timestamp < ts {
			ts, which = e.states[si].Timestamp, 0
		}
		if ji < len(e.jobLogs) && e.jobLogs[ji].Timestamp < ts {
			ts, which = e.jobLogs[ji].Timestamp, 1
		}
		if ri < len(e.runnerLogs) && e.runnerLogs[ri].Timestamp < ts {
			ts, which = e.runnerLogs[ri].Timestamp, 2
		}
		if which < 0 {
			break
		}
		if which != 0 && count > 0 && (count >= pullMaxEvents || size >= pullMaxBytes) {
			resp.HasMore = true
			break
		}
		switch which {
		case 0:
			resp.JobStates = append(resp.JobStates, e.states[si])
			si++
		case 1:
			resp.JobLogs = append(resp.JobLogs, e.jobLogs[ji])
			size += len(e.jobLogs[ji].Message)
			count++
			ji++
		case 2:
			resp.RunnerLogs = append(resp.RunnerLogs, e.runnerLogs[ri])
			size += len(e.runnerLogs[ri].Message)
			count++
			ri++
		}
		resp.LastUpdated = ts
	}
	complete = e.closed && !resp.HasMore
	return resp, complete
}

// jobLogsFrom returns the job output events from index i on, and whether the output is closed.
func (e *events) jobLogsFrom(i int) ([]agentapi.LogEvent, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if i >= len(e.jobLogs) {
		return nil, e.closed
	}
	return e.jobLogs[i:len(e.jobLogs):len(e.jobLogs)], e.closed
}

// logWriter appends each Write as one runner log event.
type logWriter struct{ e *events }

func (w logWriter) Write(p []byte) (int, error) {
	w.e.addRunnerLog(p)
	return len(p), nil
}
