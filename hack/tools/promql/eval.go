package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
)

// Scrape is one scrape of a /metrics endpoint: its text exposition, the
// time it stands for (Unix seconds), and the labels Prometheus would add to
// its series (target labels; a label the series has already wins, as with
// honor_labels).
type Scrape struct {
	Time   float64           `json:"time"`
	Text   string            `json:"text"`
	Labels map[string]string `json:"labels"`
}

// EvalInput is what `promql eval` reads: scrapes to load and queries to
// evaluate at Time.
type EvalInput struct {
	Scrapes []Scrape     `json:"scrapes"`
	Queries []Expression `json:"queries"`
	Time    float64      `json:"time"`
}

// EvalResult is one query's outcome: how many series (or one, for a
// scalar) it returned, and how many of their values are numbers (not NaN:
// a ratio of nothing to nothing, a quantile of no observations).
type EvalResult struct {
	ID      string `json:"id"`
	Series  int    `json:"series"`
	Numbers int    `json:"numbers"`
	Error   string `json:"error,omitempty"`
}

// Evaluate loads the scrapes into a TSDB of its own, in a temporary
// directory, and evaluates each query as an instant query at in.Time with
// Prometheus' engine (default lookback, no experimental features). A query
// that fails is a result with its error, not a failure of Evaluate.
func Evaluate(ctx context.Context, in EvalInput) ([]EvalResult, error) {
	dir, err := os.MkdirTemp("", "promql-eval-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	db, err := tsdb.Open(dir, nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		return nil, fmt.Errorf("open tsdb: %w", err)
	}
	defer func() { _ = db.Close() }()
	// In time order: a TSDB takes a series' samples oldest first.
	scrapes := append([]Scrape(nil), in.Scrapes...)
	sort.SliceStable(scrapes, func(i, j int) bool { return scrapes[i].Time < scrapes[j].Time })
	for i, s := range scrapes {
		if err := load(ctx, db, s); err != nil {
			return nil, fmt.Errorf("scrape %d: %w", i, err)
		}
	}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	at := unixTime(in.Time)
	results := make([]EvalResult, 0, len(in.Queries))
	for _, e := range in.Queries {
		results = append(results, evaluate(ctx, engine, db, e, at))
	}
	return results, nil
}

func evaluate(ctx context.Context, engine *promql.Engine, q storage.Queryable, e Expression, at time.Time) EvalResult {
	r := EvalResult{ID: e.ID}
	query, err := engine.NewInstantQuery(ctx, q, nil, e.Expr, at)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer query.Close()
	res := query.Exec(ctx)
	if res.Err != nil {
		r.Error = res.Err.Error()
		return r
	}
	switch v := res.Value.(type) {
	case promql.Vector:
		r.Series = len(v)
		for _, s := range v {
			if s.H != nil || !math.IsNaN(s.F) {
				r.Numbers++
			}
		}
	case promql.Scalar:
		r.Series = 1
		if !math.IsNaN(v.V) {
			r.Numbers = 1
		}
	case promql.Matrix:
		r.Series = len(v)
		r.Numbers = len(v)
	default:
		r.Error = fmt.Sprintf("unexpected result type %T", res.Value)
	}
	return r
}

// load appends the samples of one scrape at its time.
func load(ctx context.Context, db *tsdb.DB, s Scrape) error {
	ts := unixTime(s.Time).UnixMilli()
	p := textparse.NewPromParser([]byte(s.Text), labels.NewSymbolTable(), false)
	app := db.Appender(ctx)
	var lset labels.Labels
	for {
		entry, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			_ = app.Rollback()
			return fmt.Errorf("parse exposition: %w", err)
		}
		if entry != textparse.EntrySeries {
			continue
		}
		_, _, v := p.Series()
		p.Labels(&lset)
		b := labels.NewBuilder(lset)
		for name, value := range s.Labels {
			if !lset.Has(name) {
				b.Set(name, value)
			}
		}
		if _, err := app.Append(0, b.Labels(), ts, v); err != nil {
			_ = app.Rollback()
			return fmt.Errorf("append %s: %w", lset, err)
		}
	}
	return app.Commit()
}

func unixTime(seconds float64) time.Time {
	sec, frac := math.Modf(seconds)
	return time.Unix(int64(sec), int64(frac*1e9))
}
