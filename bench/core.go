package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// core runs the scheduler's benchmarks (BenchmarkDecide, BenchmarkDecideFull)
// at the configured size with `go test -count Runs` and reports the medians
// of their metrics.
func (r *Runner) core(ctx context.Context) (*Result, error) {
	res := newResult("core")
	res.Params["workers"], res.Params["evals"], res.Params["benchtime"] = r.o.CoreWorkers, r.o.CoreEvals, r.o.CoreBenchtime
	dir, err := moduleDir(ctx, r.o.GoTool)
	if err != nil {
		return res, fmt.Errorf("core needs the source tree and the go tool: %w", err)
	}
	args := []string{"test", "-run", "^$", "-bench", ".", "-benchmem",
		"-count", strconv.Itoa(r.o.Runs), "-benchtime", r.o.CoreBenchtime, "-timeout", "60m", "./scheduler/",
		"-args", fmt.Sprintf("-decide.workers=%d", r.o.CoreWorkers), fmt.Sprintf("-decide.evals=%d", r.o.CoreEvals)}
	r.logf("core: %s %s", r.o.GoTool, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, r.o.GoTool, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = r.o.log()
	err = cmd.Run()
	_ = os.WriteFile(r.path("core.txt"), out.Bytes(), 0o644)
	if err != nil {
		return res, fmt.Errorf("go test: %w\n%s", err, out.String())
	}
	parseBench(res, out.Bytes())
	if len(res.Metrics) == 0 {
		return res, fmt.Errorf("no benchmark results in:\n%s", out.String())
	}
	res.gate("core spread placements/s", "spread placements/s", 500_000, true, "placements/s")
	res.gate("core binpack placements/s", "binpack placements/s", 500_000, true, "placements/s")
	res.note("go test output in %s; the fixture is scheduler/bench_test.go's benchPool (sizes 1-4, 20%% of evals name one of 100 datasets held by 3 workers each, capacity = total size)", r.path("core.txt"))
	return res, nil
}

// parseBench adds the metrics of the benchmark lines of go test's output:
// "<strategy> <unit>" for BenchmarkDecide/<strategy>/..., "<name> <unit>"
// for the others.
func parseBench(res *Result, out []byte) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		if rest, ok := strings.CutPrefix(name, "Decide/"); ok {
			name = strings.Split(rest, "/")[0]
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			res.add(name+" "+f[i+1], f[i+1], v)
		}
	}
}

// moduleDir is the directory of the main module (where go.mod is).
func moduleDir(ctx context.Context, goTool string) (string, error) {
	out, err := exec.CommandContext(ctx, goTool, "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the line module (go env GOMOD is empty): run from the source tree")
	}
	return filepath.Dir(mod), nil
}
