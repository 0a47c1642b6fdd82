package bench

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Median returns the median of xs (the mean of the two middle values for an
// even count), NaN for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Percentile returns the p-th percentile (0 < p <= 100, nearest rank) of
// sorted, NaN for none.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	k := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(k, 0), len(sorted)-1)]
}

// durationsMs returns ds in milliseconds, sorted.
func durationsMs(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d) / float64(time.Millisecond)
	}
	slices.Sort(out)
	return out
}

// Metric is one measured quantity over the runs of a scenario.
type Metric struct {
	Name string    `json:"name"`
	Unit string    `json:"unit"`
	Runs []float64 `json:"runs"`
	// Median of Runs.
	Median float64 `json:"median"`
}

// Gate is a target of the issue, with the median it is judged on.
type Gate struct {
	Name   string `json:"name"`
	Target string `json:"target"`
	Value  string `json:"value"`
	Pass   bool   `json:"pass"`
}

// Result is what a scenario measured.
type Result struct {
	Scenario string         `json:"scenario"`
	Params   map[string]any `json:"params"`
	Metrics  []*Metric      `json:"metrics"`
	Gates    []Gate         `json:"gates"`
	Notes    []string       `json:"notes,omitempty"`
	Profiles []string       `json:"profiles,omitempty"`
	Elapsed  float64        `json:"elapsed_s"`
}

func newResult(name string) *Result {
	return &Result{Scenario: name, Params: map[string]any{}}
}

// add appends v to the runs of the metric name (created on first use). A
// value that could not be computed (NaN or infinite, e.g. the time from a
// round's commit to the next decision when there was one round) is not
// recorded.
func (r *Result) add(name, unit string, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	for _, m := range r.Metrics {
		if m.Name == name {
			m.Runs = append(m.Runs, v)
			m.Median = Median(m.Runs)
			return
		}
	}
	r.Metrics = append(r.Metrics, &Metric{Name: name, Unit: unit, Runs: []float64{v}, Median: v})
}

// Get returns the metric name, or nil.
func (r *Result) Get(name string) *Metric {
	for _, m := range r.Metrics {
		if m.Name == name {
			return m
		}
	}
	return nil
}

func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// gate records a gate judged on the median of metric name: at least (min)
// or at most (!min) target.
func (r *Result) gate(name, metric string, target float64, atLeast bool, unit string) {
	m := r.Get(metric)
	if m == nil {
		r.Gates = append(r.Gates, Gate{Name: name, Target: targetString(target, atLeast, unit), Value: "not measured"})
		return
	}
	pass := m.Median <= target
	if atLeast {
		pass = m.Median >= target
	}
	r.Gates = append(r.Gates, Gate{Name: name, Target: targetString(target, atLeast, unit), Value: formatValue(m.Median) + " " + unit, Pass: pass})
}

func targetString(v float64, atLeast bool, unit string) string {
	op := "<="
	if atLeast {
		op = ">="
	}
	return op + " " + formatValue(v) + " " + unit
}

func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case math.Abs(v) >= 1000:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// Format renders r as a text table.
func (r *Result) Format() string {
	var b strings.Builder
	fmt.Fprintf(&b, "== %s (%.0fs)\n", r.Scenario, r.Elapsed)
	keys := make([]string, 0, len(r.Params))
	for k := range r.Params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "   %s=%v", k, r.Params[k])
	}
	if len(keys) > 0 {
		b.WriteString("\n")
	}
	for _, m := range r.Metrics {
		runs := make([]string, len(m.Runs))
		for i, v := range m.Runs {
			runs[i] = formatValue(v)
		}
		fmt.Fprintf(&b, "   %-34s median %12s %-10s runs [%s]\n", m.Name, formatValue(m.Median), m.Unit, strings.Join(runs, " "))
	}
	for _, g := range r.Gates {
		status := "FAIL"
		if g.Pass {
			status = "pass"
		}
		fmt.Fprintf(&b, "   gate %-30s %s  (median %s, target %s)\n", g.Name, status, g.Value, g.Target)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "   note: %s\n", n)
	}
	for _, p := range r.Profiles {
		fmt.Fprintf(&b, "   profile: %s\n", p)
	}
	return b.String()
}

// Machine describes where a run happened.
type Machine struct {
	Cores      int    `json:"cores"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	GoVersion  string `json:"go_version"`
	LoadStart  string `json:"load_start"`
	LoadEnd    string `json:"load_end,omitempty"`
	Start      string `json:"start"`
}

// ThisMachine returns the core count, Go version and load average now.
func ThisMachine() Machine {
	return Machine{Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(),
		LoadStart: LoadAvg(), Start: time.Now().UTC().Format(time.RFC3339)}
}

// LoadAvg returns the 1, 5 and 15 minute load averages ("" where unknown).
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func (m Machine) String() string {
	return fmt.Sprintf("cores=%d GOMAXPROCS=%d %s load(1/5/15m)=%s at %s", m.Cores, m.GOMAXPROCS, m.GoVersion, m.LoadStart, m.Start)
}
