package main

import "slices"

// medianRow folds the rounds of one cell: the median of each rate and
// latency (robust to one round that the machine disturbed), the highest
// peak RSS, and the sums of the counts.
func medianRow(rows []gatewayRow) gatewayRow {
	median := func(get func(gatewayRow) float64) float64 {
		vals := make([]float64, len(rows))
		for i, r := range rows {
			vals[i] = get(r)
		}
		slices.Sort(vals)
		return vals[len(vals)/2]
	}
	out := rows[0]
	out.RPS = median(func(r gatewayRow) float64 { return r.RPS })
	out.P50 = median(func(r gatewayRow) float64 { return r.P50 })
	out.P90 = median(func(r gatewayRow) float64 { return r.P90 })
	out.P99 = median(func(r gatewayRow) float64 { return r.P99 })
	out.CPUPer10k = median(func(r gatewayRow) float64 { return r.CPUPer10k })
	out.Requests, out.Errors, out.Sent, out.VerifyCalls = 0, 0, 0, 0
	out.NewUsers, out.LookupCalls, out.UserCalls, out.TokenCalls = 0, 0, 0, 0
	for _, r := range rows {
		out.PeakRSSMiB = max(out.PeakRSSMiB, r.PeakRSSMiB)
		out.Requests += r.Requests
		out.Errors += r.Errors
		out.Sent += r.Sent
		out.VerifyCalls += r.VerifyCalls
		out.NewUsers += r.NewUsers
		out.LookupCalls += r.LookupCalls
		out.UserCalls += r.UserCalls
		out.TokenCalls += r.TokenCalls
	}
	return out
}

// pairedRatio is mode's throughput as a fraction of base's: per round,
// against base measured moments before in the same round, then the median
// over the rounds. Pairing within a round keeps a disturbance of the
// machine that spans one round (another process, a GC of the driver) out
// of the comparison, which a ratio of the two medians would take in. 0
// when base was not measured.
func pairedRatio(samples map[string][]gatewayRow, mode, base string) float64 {
	rows, bases := samples[mode], samples[base]
	var ratios []float64
	for i := range min(len(rows), len(bases)) {
		if bases[i].RPS > 0 {
			ratios = append(ratios, rows[i].RPS/bases[i].RPS)
		}
	}
	if len(ratios) == 0 {
		return 0
	}
	slices.Sort(ratios)
	return ratios[len(ratios)/2]
}

// pairedDiff is mode's figure (get) minus base's: per round, against base
// measured moments before in the same round, then the median over the
// rounds, as pairedRatio does for throughput. 0 when base was not measured.
func pairedDiff(samples map[string][]gatewayRow, mode, base string, get func(gatewayRow) float64) float64 {
	rows, bases := samples[mode], samples[base]
	var diffs []float64
	for i := range min(len(rows), len(bases)) {
		diffs = append(diffs, get(rows[i])-get(bases[i]))
	}
	if len(diffs) == 0 {
		return 0
	}
	slices.Sort(diffs)
	return diffs[len(diffs)/2]
}

// abbaModes are the modes whose share of jwt's throughput is also measured
// in ABBA blocks at the target concurrency (see abbaBlock): the gateway
// differs from jwt's by one configuration block and serves the same
// tokens, so short cells measure the same thing as long ones. access and
// user-token are left out: each of their cells starts with new users, so
// a short cell would weigh the cold lookups more than the table does.
var abbaModes = []string{modeAudit, modeTracing}

// abbaBlock is one block of short cells measured in the order base (jwt),
// mode, mode, base. Per-round pairs compare two cells taken seconds apart
// with other modes in between, and the machine drifts over seconds by more
// than the few percent some targets allow; inside a block, a drift that is
// linear over the block adds as much to base as to mode.
type abbaBlock struct {
	base, mode [2]gatewayRow
}

// ratio is the block's throughput ratio, mode over base, each summed over
// its two cells (so that a linear drift cancels); 0 when base served
// nothing.
func (b abbaBlock) ratio() float64 {
	base := b.base[0].RPS + b.base[1].RPS
	if base <= 0 {
		return 0
	}
	return (b.mode[0].RPS + b.mode[1].RPS) / base
}

// cpuRatio is the block's ratio of the proxy's CPU per request, mode over
// base (above 1: the mode costs more); 0 when base used none.
func (b abbaBlock) cpuRatio() float64 {
	base := b.base[0].CPUPer10k + b.base[1].CPUPer10k
	if base <= 0 {
		return 0
	}
	return (b.mode[0].CPUPer10k + b.mode[1].CPUPer10k) / base
}

// blockSummary is what the ABBA blocks of one cell say.
type blockSummary struct {
	// Ratio is the median of the blocks' throughput ratios, and Q1 and Q3
	// their first and third quartiles: how far one block's ratio strays.
	Ratio, Q1, Q3 float64
	// CPURatio is the median of the blocks' CPU-per-request ratios.
	CPURatio float64
	// Blocks counts the blocks with a ratio.
	Blocks int
}

// summarizeBlocks folds the blocks of one cell; zero without a block that
// has a ratio.
func summarizeBlocks(blocks []abbaBlock) blockSummary {
	var ratios, cpus []float64
	for _, b := range blocks {
		if r := b.ratio(); r > 0 {
			ratios = append(ratios, r)
		}
		if c := b.cpuRatio(); c > 0 {
			cpus = append(cpus, c)
		}
	}
	if len(ratios) == 0 {
		return blockSummary{}
	}
	slices.Sort(ratios)
	slices.Sort(cpus)
	return blockSummary{
		Ratio: median(ratios), Q1: quantile(ratios, 0.25), Q3: quantile(ratios, 0.75),
		CPURatio: median(cpus), Blocks: len(ratios),
	}
}

// median of sorted values, the mean of the middle two for an even count
// (the upper middle alone would lean high); 0 for none.
func median(sorted []float64) float64 {
	n := len(sorted)
	switch {
	case n == 0:
		return 0
	case n%2 == 1:
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// quantile p of sorted values, interpolated between the nearest ranks; 0
// for none.
func quantile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	pos := p * float64(len(sorted)-1)
	i := int(pos)
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[i] + (pos-float64(i))*(sorted[i+1]-sorted[i])
}
