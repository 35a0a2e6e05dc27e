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

// TestPairedDiff checks that a difference pairs each round with its own
// base, as TestPairedRatio does for ratios.
func TestPairedDiff(t *testing.T) {
	t.Parallel()
	p50 := func(vs ...float64) []gatewayRow {
		rows := make([]gatewayRow, len(vs))
		for i, v := range vs {
			rows[i].P50 = v
		}
		return rows
	}
	get := func(r gatewayRow) float64 { return r.P50 }
	for _, tc := range []struct {
		name       string
		mode, base []gatewayRow
		want       float64
	}{
		// Round by round: 0.2, 0.4, 0.1; the difference of the medians
		// (1.4 - 1.3) would pair figures from different rounds.
		{"paired by round", p50(0.9, 3.0, 1.4), p50(0.7, 2.6, 1.3), 0.2},
		{"median of three", p50(1.1, 1.5, 1.2), p50(1.0, 1.0, 1.0), 0.2},
		{"base missing", p50(1.0), nil, 0},
	} {
		got := pairedDiff(map[string][]gatewayRow{modeAccess: tc.mode, modeJWT: tc.base}, modeAccess, modeJWT, get)
		if d := got - tc.want; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s: pairedDiff = %v, want %v", tc.name, got, tc.want)
		}
	}
}
