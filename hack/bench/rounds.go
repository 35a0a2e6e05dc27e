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
