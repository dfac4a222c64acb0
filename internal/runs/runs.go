package runs

import (
	"context"
	"slices"
	"time"

	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/store"
)

// Latest returns the latest submission of each job of a run (jobs ordered by replica, job and
// submission number, as store.ListJobs gives them).
func Latest(jobs []*models.Job) []*models.Job {
	var out []*models.Job
	for _, j := range jobs {
		if n := len(out); n > 0 && out[n-1].ReplicaNum == j.ReplicaNum && out[n-1].JobNum == j.JobNum {
			out[n-1] = j
			continue
		}
		out = append(out, j)
	}
	return out
}

// retryEvent is the retry event a job's termination reason counts as ("" for none).
func retryEvent(reason string) string {
	switch reason {
	case models.JobNoCapacity:
		return "no-capacity"
	case models.JobInterruptedNoCapacity, models.JobInstanceUnreachable:
		return "interruption"
	case models.JobContainerExitedError, models.JobExecutorError, models.JobCreatingContainerError,
		"ports_binding_failed", "gateway_error", "waiting_instance_limit_exceeded", models.JobWaitingRunnerLimit:
		return "error"
	}
	return ""
}

// retryBackoff is how long a run waits before its n-th resubmission (dstack's schedule).
func retryBackoff(n int) time.Duration {
	steps := []time.Duration{15 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute}
	return steps[min(n, len(steps)-1)]
}

// jobStopReason is the termination reason of the jobs of a run stopped for reason.
func jobStopReason(runReason string) string {
	switch runReason {
	case models.RunStoppedByUser:
		return models.JobTerminatedByUser
	case models.RunAbortedByUser:
		return models.JobAbortedByUser
	}
	return models.JobTerminatedByServer
}

// ProcessRun derives a run's status from its jobs and acts on stop requests, failures and retries.
func (s *Service) ProcessRun(ctx context.Context, l store.Lease) (time.Duration, error) {
	run, err := s.Store.GetRunByID(ctx, l.ID)
	if err != nil {
		return 0, err
	}
	if models.RunFinished(run.Status) {
		return 0, nil
	}
	all, err := s.Store.ListJobs(ctx, run.ID)
	if err != nil {
		return 0, err
	}
	jobs := Latest(all)
	var unfinished []string
	for _, j := range jobs {
		if !models.JobFinished(j.Status) {
			unfinished = append(unfinished, j.ID)
		}
	}
	save := func() error { return s.Store.UpdateRunState(ctx, l, run) }

	if run.StopReason != "" && (run.Status != models.RunTerminating || run.StopReason == models.RunAbortedByUser && run.TerminationReason != models.RunAbortedByUser) {
		run.Status, run.TerminationReason, run.StatusMessage = models.RunTerminating, run.StopReason, models.RunTerminating
	}
	if run.Status == models.RunTerminating {
		if len(unfinished) > 0 {
			if err := s.Store.RequestJobStop(ctx, unfinished, jobStopReason(run.TerminationReason)); err != nil {
				return 0, err
			}
			s.wake(store.TableJobs)
			return 5 * time.Second, save() // the jobs wake the run when they finish
		}
		run.Status = models.RunStatusFor(run.TerminationReason)
		run.StatusMessage = run.Status
		s.log().Info("run finished", "run", run.Name, "status", run.Status, "reason", run.TerminationReason)
		return 0, save()
	}

	if run.Status == models.RunPending {
		if run.ResubmitAt != nil && time.Now().Before(*run.ResubmitAt) {
			return time.Until(*run.ResubmitAt), nil
		}
		var next []*models.Job
		for _, j := range jobs {
			next = append(next, &models.Job{JobNum: j.JobNum, ReplicaNum: j.ReplicaNum, SubmissionNum: j.SubmissionNum + 1,
				JobName: j.JobName, Spec: j.Spec, Status: models.JobSubmitted, StatusMessage: models.JobSubmitted})
		}
		run.Status, run.StatusMessage, run.ResubmitAt = models.RunSubmitted, models.RunSubmitted, nil
		if err := s.Store.ResubmitJobs(ctx, l, run, next); err != nil {
			return 0, err
		}
		s.wake(store.TableJobs)
		return 0, nil
	}

	var failed *models.Job
	done := 0
	for _, j := range jobs {
		switch {
		case j.Status == models.JobDone:
			done++
		case models.JobFinished(j.Status) && failed == nil:
			failed = j
		}
	}
	if failed != nil {
		retry := run.Spec.Params().RetryPolicy()
		event := retryEvent(failed.TerminationReason)
		if retry != nil && event != "" && slices.Contains(retry.OnEvents, event) {
			if time.Since(run.SubmittedAt) < time.Duration(retry.Duration)*time.Second {
				if len(unfinished) > 0 {
					// The other nodes of the replica go too, and come back with it.
					if err := s.Store.RequestJobStop(ctx, unfinished, models.JobTerminatedByServer); err != nil {
						return 0, err
					}
					s.wake(store.TableJobs)
					return 5 * time.Second, nil
				}
				wait := retryBackoff(failed.SubmissionNum)
				at := time.Now().Add(wait)
				run.Status, run.StatusMessage, run.ResubmitAt = models.RunPending, "retrying", &at
				return wait, save()
			}
			run.TerminationReason = models.RunRetryLimitExceeded
		} else {
			run.TerminationReason = models.RunJobFailed
		}
		run.Status, run.StatusMessage = models.RunTerminating, models.RunTerminating
		if err := save(); err != nil {
			return 0, err
		}
		return time.Millisecond, nil // the terminating branch stops the other jobs
	}
	if done == len(jobs) && len(jobs) > 0 {
		run.Status, run.StatusMessage, run.TerminationReason = models.RunDone, models.RunDone, models.RunAllJobsDone
		s.log().Info("run finished", "run", run.Name, "status", run.Status)
		return 0, save()
	}
	status, fleetID := models.RunSubmitted, run.FleetID
	for _, j := range jobs {
		switch j.Status {
		case models.JobRunning:
			status = models.RunRunning
		case models.JobProvisioning, models.JobPulling:
			if status != models.RunRunning {
				status = models.RunProvisioning
			}
		}
		if fleetID == "" && j.InstanceID != "" {
			if inst, err := s.Store.GetInstance(ctx, j.InstanceID); err == nil {
				fleetID = inst.FleetID
			}
		}
	}
	if status == run.Status && status == run.StatusMessage && fleetID == run.FleetID {
		return 0, nil
	}
	run.Status, run.StatusMessage, run.FleetID = status, status, fleetID
	return 0, save()
}
