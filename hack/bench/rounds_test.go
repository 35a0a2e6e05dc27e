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

// TestABBABlocks checks the ABBA blocks' ratio: a drift that is linear
// over a block cancels (where a pair of its cells would not), the median
// of the blocks ignores one disturbed block, an even count takes the mean
// of the middle two, the quartiles bound the middle half, and a block
// whose base served nothing counts for nothing.
func TestABBABlocks(t *testing.T) {
	t.Parallel()
	// block is base, mode, mode, base: throughputs in the order measured,
	// with the proxy's CPU per 10k requests as cpus (nil: none measured).
	block := func(rps [4]float64, cpus ...float64) abbaBlock {
		var b abbaBlock
		b.base[0].RPS, b.mode[0].RPS, b.mode[1].RPS, b.base[1].RPS = rps[0], rps[1], rps[2], rps[3]
		if len(cpus) == 4 {
			b.base[0].CPUPer10k, b.mode[0].CPUPer10k, b.mode[1].CPUPer10k, b.base[1].CPUPer10k = cpus[0], cpus[1], cpus[2], cpus[3]
		}
		return b
	}
	// drifting is a block whose machine slows by step every cell, of a
	// mode that truly serves ratio of base's throughput.
	drifting := func(base, ratio, step float64) abbaBlock {
		return block([4]float64{base, (base - step) * ratio, (base - 2*step) * ratio, base - 3*step})
	}
	for _, tc := range []struct {
		name   string
		blocks []abbaBlock
		want   blockSummary
	}{
		{
			// The first pair alone would say 0.97*0.9/1 = 0.873.
			name:   "a linear drift cancels",
			blocks: []abbaBlock{drifting(10000, 0.97, 1000)},
			want:   blockSummary{Ratio: 0.97, Q1: 0.97, Q3: 0.97, Blocks: 1},
		},
		{
			name: "one disturbed block of three",
			blocks: []abbaBlock{
				block([4]float64{1000, 960, 960, 1000}),
				block([4]float64{1000, 500, 500, 1000}),
				block([4]float64{1000, 980, 980, 1000}),
			},
			want: blockSummary{Ratio: 0.96, Q1: 0.73, Q3: 0.97, Blocks: 3},
		},
		{
			name: "an even count: the mean of the middle two, and the CPU ratio",
			blocks: []abbaBlock{
				block([4]float64{1000, 950, 950, 1000}, 1, 1.1, 1.1, 1),
				block([4]float64{1000, 990, 990, 1000}, 1, 1.0, 1.0, 1),
				block([4]float64{1000, 970, 970, 1000}, 1, 1.02, 1.02, 1),
				block([4]float64{1000, 1010, 1010, 1000}, 1, 0.98, 0.98, 1),
			},
			want: blockSummary{Ratio: 0.98, Q1: 0.965, Q3: 0.995, CPURatio: 1.01, Blocks: 4},
		},
		{
			name: "a base that served nothing",
			blocks: []abbaBlock{
				block([4]float64{0, 900, 900, 0}),
				block([4]float64{1000, 900, 900, 1000}),
			},
			want: blockSummary{Ratio: 0.9, Q1: 0.9, Q3: 0.9, Blocks: 1},
		},
		{name: "no blocks", want: blockSummary{}},
	} {
		got := summarizeBlocks(tc.blocks)
		near := func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
		if got.Blocks != tc.want.Blocks || !near(got.Ratio, tc.want.Ratio) || !near(got.Q1, tc.want.Q1) ||
			!near(got.Q3, tc.want.Q3) || !near(got.CPURatio, tc.want.CPURatio) {
			t.Errorf("%s: summarizeBlocks = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
