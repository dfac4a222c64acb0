package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// printTable writes headers and rows as space-aligned columns.
func printTable(w io.Writer, headers []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			// A tab or newline inside a cell would break the layout.
			cells[i] = strings.Join(strings.Fields(c), " ")
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// printJSON writes v as indented JSON followed by a newline.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// confirm answers question: true with yes, false with no, otherwise it asks on the command's stderr and
// reads y/yes or n/no (any case) from its stdin, asking again after any other answer. Stdin at its end
// without an answer is an error that suggests -y.
func confirm(cmd *cobra.Command, question string, yes, no bool) (bool, error) {
	if yes {
		return true, nil
	}
	if no {
		return false, nil
	}
	in := cmd.InOrStdin()
	for {
		fmt.Fprintf(cmd.ErrOrStderr(), "%s [y/n]: ", question)
		line, err := readLine(in)
		switch strings.ToLower(strings.TrimSpace(line)) {
		case "y", "yes":
			return true, nil
		case "n", "no":
			return false, nil
		}
		if err != nil {
			fmt.Fprintln(cmd.ErrOrStderr())
			if errors.Is(err, io.EOF) {
				return false, fmt.Errorf("no answer to %q on stdin; pass -y to confirm", question)
			}
			return false, fmt.Errorf("read answer: %w", err)
		}
	}
}

// readLine reads up to and without the next '\n' one byte at a time, so that nothing after the line is
// consumed from r (a later prompt may read it).
func readLine(r io.Reader) (string, error) {
	if br, ok := r.(*bufio.Reader); ok {
		s, err := br.ReadString('\n')
		return strings.TrimSuffix(s, "\n"), err
	}
	var sb strings.Builder
	buf := make([]byte, 1)
	for {
		n, err := r.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				return sb.String(), nil
			}
			sb.WriteByte(buf[0])
		}
		if err != nil {
			return sb.String(), err
		}
	}
}
