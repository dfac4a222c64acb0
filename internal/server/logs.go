package server

import (
	"encoding/base64"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/dstackgo/dstack/internal/logstore"
	"github.com/dstackgo/dstack/internal/store"
)

type pollLogsRequest struct {
	RunName         string  `json:"run_name" required:"true"`
	JobSubmissionID string  `json:"job_submission_id" required:"true"`
	StartTime       *string `json:"start_time"`
	EndTime         *string `json:"end_time"`
	Descending      bool    `json:"descending"`
	NextToken       *string `json:"next_token"`
	Limit           *int    `json:"limit"`
	Diagnose        bool    `json:"diagnose"`
}

type logEventJSON struct {
	Timestamp string `json:"timestamp"`
	LogSource string `json:"log_source"`
	Message   string `json:"message"`
}

type logsJSON struct {
	Logs        []logEventJSON `json:"logs"`
	ExternalURL *string        `json:"external_url"`
	NextToken   *string        `json:"next_token"`
}

// pollLogs answers dstack logs: the job's output (or, with diagnose, the runner's log) of one job
// submission. An unknown run or submission has no logs.
func (s *Server) pollLogs(r *request) (any, *apiError) {
	var req pollLogsRequest
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	var items []validationItem
	if u, err := uuid.Parse(req.JobSubmissionID); err != nil {
		items = append(items, validationItem{Type: "uuid_parsing", Loc: []any{"body", "job_submission_id"},
			Msg: "Input should be a valid UUID", Input: req.JobSubmissionID})
	} else if u.Version() != 4 {
		items = append(items, validationItem{Type: "uuid_version", Loc: []any{"body", "job_submission_id"},
			Msg: "UUID version 4 expected", Input: req.JobSubmissionID, Ctx: map[string]any{"expected_version": 4}})
	}
	limit := 100
	if req.Limit != nil {
		limit = *req.Limit
		if limit > 1000 {
			items = append(items, validationItem{Type: "less_than_equal", Loc: []any{"body", "limit"},
				Msg: "Input should be less than or equal to 1000", Input: limit, Ctx: map[string]any{"le": 1000}})
		} else if limit < 0 {
			items = append(items, validationItem{Type: "greater_than_equal", Loc: []any{"body", "limit"},
				Msg: "Input should be greater than or equal to 0", Input: limit, Ctx: map[string]any{"ge": 0}})
		}
	}
	q := logstore.Query{Descending: req.Descending, Limit: limit}
	for _, tf := range []struct {
		name string
		in   *string
		out  **time.Time
	}{{"start_time", req.StartTime, &q.Start}, {"end_time", req.EndTime, &q.End}} {
		if tf.in == nil {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, *tf.in)
		if err != nil {
			items = append(items, validationItem{Type: "datetime_from_date_parsing", Loc: []any{"body", tf.name},
				Msg: "Input should be a valid datetime", Input: *tf.in})
			continue
		}
		*tf.out = &t
	}
	if len(items) > 0 {
		return nil, unprocessable(items...)
	}
	if req.NextToken != nil {
		q.NextToken = *req.NextToken
	}
	empty := logsJSON{Logs: []logEventJSON{}}
	if limit == 0 {
		return empty, nil
	}
	j, err := s.store.GetJob(r.Context(), req.JobSubmissionID)
	if errors.Is(err, store.ErrNotFound) || err == nil && (j.ProjectID != r.project.ID || j.RunName != req.RunName) {
		return empty, nil
	}
	if err != nil {
		return nil, s.internal(err)
	}
	kind := logstore.Job
	if req.Diagnose {
		kind = logstore.Runner
	}
	events, next, err := s.work().logs.Poll(logstore.Key{Project: r.project.Name, Run: req.RunName, Submission: j.ID, Kind: kind}, q)
	if errors.Is(err, logstore.ErrBadToken) {
		return nil, badRequestf("Invalid next_token")
	}
	if err != nil {
		return nil, s.internal(err)
	}
	out := logsJSON{Logs: make([]logEventJSON, len(events)), NextToken: nonEmpty(next)}
	for i, e := range events {
		out.Logs[i] = logEventJSON{Timestamp: apiTime(e.Timestamp), LogSource: e.Source, Message: base64.StdEncoding.EncodeToString(e.Message)}
	}
	return out, nil
}
