package testenv

import "strings"

// TableRow is the row whose NAME column is name in kubectl get's table
// output, keyed by the column headers; false when no row has that name.
// It reads columns by whitespace, so it suits columns without spaces.
func TableRow(out, name string) (map[string]string, bool) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 {
		return nil, false
	}
	header := strings.Fields(lines[0])
	for _, line := range lines[1:] {
		cells := strings.Fields(line)
		if len(cells) != len(header) {
			continue
		}
		row := make(map[string]string, len(cells))
		for i, h := range header {
			row[h] = cells[i]
		}
		if row["NAME"] == name {
			return row, true
		}
	}
	return nil, false
}
