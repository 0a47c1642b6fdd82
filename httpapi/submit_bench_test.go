package httpapi_test

import (
	"bytes"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/line-sched/line/testkit"
)

// BenchmarkSubmitEvalHTTP posts single evals as line bench ingest does
// (`{"size":1}`, 64 connections at once) to an ingest served over real HTTP
// with an embedded broker, all in this process: ns/op and allocs/op include
// the client and the broker. For the share of each, run it with
// -cpuprofile or -memprofile. cpu-µs/op is the process's CPU time (user and
// system) per request: on a shared machine it moves less than ns/op.
func BenchmarkSubmitEvalHTTP(b *testing.B) {
	emb := testkit.StartBroker(b)
	cfg := testkit.Config(b)
	base, _ := testkit.StartIngest(b, cfg, emb.Addrs())
	if r := testkit.Do(b, http.MethodPost, base+"/v1/pools", map[string]any{"pool_id": "bench"}); r.Status != http.StatusCreated {
		b.Fatalf("create pool: %s", r)
	}
	url := base + "/v1/pools/bench/evals"
	body := []byte(`{"size":1}`)
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 128, MaxIdleConnsPerHost: 128}}
	defer client.CloseIdleConnections()
	b.SetParallelism(32) // 64 goroutines on 2 cores
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
}

// processCPU is the CPU time this process used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
