package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dstackgo/dstack/internal/client"
)

func newMetricsCmd() *cobra.Command {
	var project string
	cmd := &cobra.Command{
		Use:   "metrics RUN",
		Short: "Show the latest CPU, memory and GPU usage of a run's jobs",
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
			var rows [][]string
			for _, j := range run.Jobs {
				status := ""
				if n := len(j.JobSubmissions); n > 0 {
					status = j.JobSubmissions[n-1].Status
				}
				m, err := c.GetJobMetrics(ctx, p.Name, args[0], j.JobSpec.ReplicaNum, j.JobSpec.JobNum, 1)
				if err != nil {
					return err
				}
				name := j.JobSpec.JobName
				if len(run.Jobs) == 1 {
					name = args[0]
				}
				rows = append(rows, append([]string{name, status}, metricsCells(m)...))
			}
			return printTable(cmd.OutOrStdout(), []string{"NAME", "STATUS", "CPU", "MEMORY", "GPU"}, rows)
		},
	}
	cmd.Flags().StringVar(&project, "project", "", "project (default: the default project)")
	return cmd
}

// metricsCells formats the latest sample as the CPU, MEMORY and GPU cells ("-" without samples).
func metricsCells(m *client.JobMetrics) []string {
	latest := map[string]float64{}
	for _, s := range m.Metrics {
		if len(s.Values) > 0 {
			latest[s.Name] = s.Values[0]
		}
	}
	if len(latest) == 0 {
		return []string{"-", "-", "-"}
	}
	mb := func(b float64) string { return fmt.Sprintf("%.0fMB", b/(1<<20)) }
	cpu := fmt.Sprintf("%.0f%%", latest["cpu_usage_percent"])
	mem := mb(latest["memory_working_set_bytes"])
	if total, ok := latest["memory_total_bytes"]; ok {
		mem += "/" + mb(total)
	}
	var gpus []string
	for i := range int(latest["gpus_detected_num"]) {
		g := fmt.Sprintf("gpu=%d mem=%s", i, mb(latest[fmt.Sprintf("gpu_memory_usage_bytes_gpu%d", i)]))
		if total, ok := latest["gpu_memory_total_bytes"]; ok {
			g += "/" + mb(total)
		}
		gpus = append(gpus, g+fmt.Sprintf(" util=%.0f%%", latest[fmt.Sprintf("gpu_util_percent_gpu%d", i)]))
	}
	gpu := "-"
	if len(gpus) > 0 {
		gpu = strings.Join(gpus, ", ")
	}
	return []string{cpu, mem, gpu}
}
