package main

import "testing"

// TestPairedRatio checks that a ratio pairs each round with its own base:
// a round the machine slowed for both modes does not move it, and a base
// that was not measured gives 0.
func TestPairedRatio(t *testing.T) {
	t.Parallel()
	rps := func(vs ...float64) []gatewayRow {
		rows := make([]gatewayRow, len(vs))
		for i, v := range vs {
			rows[i].RPS = v
		}
		return rows
	}
	for _, tc := range []struct {
		name       string
		mode, base []gatewayRow
		want       float64
	}{
		// The ratio of medians would be 7000/8000 = 0.875; every round
		// says 0.95.
		{"one slow round for both", rps(9500, 7600, 6650), rps(10000, 8000, 7000), 0.95},
		{"median of three", rps(900, 800, 990), rps(1000, 1000, 1000), 0.9},
		{"base missing", rps(900), nil, 0},
		{"base with no throughput", rps(900), rps(0), 0},
		{"fewer base rounds", rps(900, 450), rps(1000), 0.9},
	} {
		samples := map[string][]gatewayRow{modeAccess: tc.mode, modeJWT: tc.base}
		if got := pairedRatio(samples, modeAccess, modeJWT); got != tc.want {
			t.Errorf("%s: pairedRatio = %v, want %v", tc.name, got, tc.want)
		}
	}
}
