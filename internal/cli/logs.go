package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/dstackgo/dstack/internal/client"
)

func newLogsCmd() *cobra.Command {
	var (
		project          string
		follow, diagnose bool
		replica, jobNum  int
	)
	cmd := &cobra.Command{
		Use:   "logs RUN",
		Short: "Show the output of a run's job (stdout, stderr to stderr)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, c, err := currentProject(project)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			run, err := c.GetRun(ctx, p.Name, args[0])
			if err != nil {
				return err
			}
			sub := jobSubmission(run, replica, jobNum)
			if sub == nil {
				return fmt.Errorf("run %s has no job %d of replica %d", args[0], jobNum, replica)
			}
			lp := &logPrinter{c: c, project: p.Name, run: args[0], submission: sub.ID, diagnose: diagnose,
				stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr()}
			for {
				if err := lp.drain(ctx); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				if !follow || finished(run.Status) {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(time.Second):
				}
				if run, err = c.GetRun(ctx, p.Name, args[0]); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
			}
		},
	}
	cmd.Flags().StringVar(&project, "project", "", "project (default: the default project)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output until the run finishes")
	cmd.Flags().BoolVarP(&diagnose, "diagnose", "d", false, "show the runner's log instead of the job's output")
	cmd.Flags().IntVar(&replica, "replica", 0, "replica number")
	cmd.Flags().IntVar(&jobNum, "job", 0, "job number (node) of the replica")
	return cmd
}

// jobSubmission is the latest submission of a job of the run.
func jobSubmission(run *client.Run, replica, jobNum int) *client.JobSubmission {
	for _, j := range run.Jobs {
		if j.JobSpec.ReplicaNum == replica && j.JobSpec.JobNum == jobNum && len(j.JobSubmissions) > 0 {
			return &j.JobSubmissions[len(j.JobSubmissions)-1]
		}
	}
	return nil
}

func finished(status string) bool {
	return status == "done" || status == "failed" || status == "terminated"
}

// logPrinter prints a job submission's logs as they come: each drain prints what is new.
type logPrinter struct {
	c                        *client.Client
	project, run, submission string
	diagnose                 bool
	stdout, stderr           io.Writer
	last                     *time.Time // timestamp of the last event printed
}

func (l *logPrinter) drain(ctx context.Context) error {
	for {
		q := client.LogsQuery{RunName: l.run, JobSubmissionID: l.submission, Diagnose: l.diagnose}
		if l.last != nil {
			// Events of one runner have strictly increasing timestamps (ms): go on just after the last.
			start := l.last.Add(time.Microsecond)
			q.StartTime = &start
		}
		page, err := l.c.PollLogs(ctx, l.project, q)
		if err != nil {
			return err
		}
		for _, e := range page.Logs {
			w := l.stdout
			if e.LogSource == "stderr" {
				w = l.stderr
			}
			if _, err := w.Write(e.Message); err != nil {
				return err
			}
		}
		if n := len(page.Logs); n > 0 {
			ts := page.Logs[n-1].Timestamp
			l.last = &ts
		}
		if page.NextToken == nil {
			return nil
		}
	}
}

// followRun prints a run's progress and output until it finishes; Ctrl-C detaches. A run that does
// not end done is an exit status of 1.
func followRun(cmd *cobra.Command, c *client.Client, project, name string, attached bool) error {
	ctx := cmd.Context()
	errOut := cmd.ErrOrStderr()
	var lp *logPrinter
	lastStatus := ""
	for {
		run, err := c.GetRun(ctx, project, name)
		if err != nil {
			if errors.Is(ctx.Err(), context.Canceled) {
				break
			}
			return err
		}
		status := run.Status
		if sub := run.LatestJobSubmission; sub != nil {
			if status != "running" && sub.StatusMessage != "" && sub.StatusMessage != status {
				status += " (" + sub.StatusMessage + ")"
			}
			if lp == nil || lp.submission != sub.ID {
				lp = &logPrinter{c: c, project: project, run: name, submission: sub.ID, stdout: cmd.OutOrStdout(), stderr: errOut}
			}
		}
		if status != lastStatus && !finished(run.Status) {
			fmt.Fprintf(errOut, "%s %s\n", name, status)
			if run.Status == "running" && lastStatus != "running" && run.Type() == "dev-environment" {
				fmt.Fprintf(errOut, "To connect to the dev environment, run `dstack attach %s` in another terminal.\n", name)
			}
			lastStatus = status
		}
		if lp != nil {
			if err := lp.drain(ctx); err != nil && ctx.Err() == nil {
				return err
			}
		}
		if finished(run.Status) {
			return runResult(errOut, run)
		}
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
			continue
		}
		break
	}
	if attached {
		fmt.Fprintf(errOut, "\nDetached from run %s; it goes on. `dstack logs -f %s` follows it, `dstack stop %s` stops it.\n", name, name, name)
	}
	return nil
}

// runResult reports how a finished run ended.
func runResult(w io.Writer, run *client.Run) error {
	msg := fmt.Sprintf("Run %s %s", run.Name(), run.Status)
	if sub := run.LatestJobSubmission; sub != nil && run.Status != "done" {
		if sub.TerminationReason != nil {
			msg += ": " + *sub.TerminationReason
		}
		if sub.ExitStatus != nil {
			msg += fmt.Sprintf(" (exit status %d)", *sub.ExitStatus)
		}
		if m := deref(sub.TerminationReasonMessage); m != "" {
			msg += ": " + m
		}
	}
	fmt.Fprintln(w, msg)
	if run.Status == "failed" {
		return exitError{code: 1}
	}
	return nil
}
