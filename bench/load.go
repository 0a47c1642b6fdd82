package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// apiClient talks to line's HTTP API.
type apiClient struct {
	base string
	c    *http.Client
	// retried counts requests answered 503 and sent again.
	retried atomic.Int64
}

// newAPI returns a client of base keeping up to conns connections.
func newAPI(base string, conns int) *apiClient {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	return &apiClient{base: base, c: &http.Client{Transport: tr, Timeout: 5 * time.Minute}}
}

func (a *apiClient) close() { a.c.CloseIdleConnections() }

// do sends one request; 503 answers are retried (up to a minute).
func (a *apiClient) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
		if err != nil {
			return 0, nil, err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := a.c.Do(req)
		if err != nil {
			return 0, nil, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return resp.StatusCode, nil, err
		}
		if resp.StatusCode == http.StatusServiceUnavailable && time.Now().Before(deadline) {
			a.retried.Add(1)
			select {
			case <-ctx.Done():
				return 0, nil, ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		return resp.StatusCode, b, nil
	}
}

func (a *apiClient) expect(ctx context.Context, method, path string, body any, want int) ([]byte, error) {
	var enc []byte
	if body != nil {
		var err error
		if enc, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	status, b, err := a.do(ctx, method, path, enc)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if status != want {
		if len(b) > 512 {
			b = b[:512]
		}
		return nil, fmt.Errorf("%s %s: %d %s", method, path, status, b)
	}
	return b, nil
}

// waitHealthy waits until GET /healthz answers 200.
func (a *apiClient) waitHealthy(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		status, b, err := a.do(ctx, http.MethodGet, "/healthz", nil)
		if err == nil && status == http.StatusOK {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not healthy after %s: %d %s %v", timeout, status, b, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (a *apiClient) createPool(ctx context.Context, pool, strategy string, localityWait time.Duration, delivery string) error {
	_, err := a.expect(ctx, http.MethodPost, "/v1/pools", map[string]any{"pool_id": pool, "strategy": strategy,
		"locality_wait": localityWait.String(), "delivery": delivery}, http.StatusCreated)
	return err
}

// workerSpec is a worker to register.
type workerSpec struct {
	ID       string
	Capacity int64
	Datasets []string
}

// registerWorkers registers ws with conc concurrent requests.
func (a *apiClient) registerWorkers(ctx context.Context, pool string, ws []workerSpec, conc int) error {
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	for range max(conc, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ws) || ctx.Err() != nil {
					return
				}
				w := ws[i]
				body := map[string]any{"worker_id": w.ID, "capacity": w.Capacity}
				if len(w.Datasets) > 0 {
					body["datasets"] = w.Datasets
				}
				if _, err := a.expect(ctx, http.MethodPost, "/v1/pools/"+pool+"/workers", body, http.StatusCreated); err != nil {
					errMu.Lock()
					if first == nil {
						first = err
					}
					errMu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// evalSpec is an eval to submit.
type evalSpec struct {
	ID      string
	Dataset string
	Size    int64
}

// appendEvalJSON appends e as the API's eval object.
func appendEvalJSON(b []byte, e evalSpec) []byte {
	b = append(b, '{')
	if e.ID != "" {
		b = append(b, `"eval_id":"`...)
		b = append(b, e.ID...)
		b = append(b, `",`...)
	}
	if e.Dataset != "" {
		b = append(b, `"dataset_id":"`...)
		b = append(b, e.Dataset...)
		b = append(b, `",`...)
	}
	b = append(b, `"size":`...)
	b = strconv.AppendInt(b, e.Size, 10)
	return append(b, '}')
}

// batchBody is the body of POST /v1/pools/{pool}/evals/batch.
func batchBody(es []evalSpec) []byte {
	b := make([]byte, 0, 64*len(es)+16)
	b = append(b, `{"evals":[`...)
	for i, e := range es {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendEvalJSON(b, e)
	}
	return append(b, "]}"...)
}

// evalGen generates the evals of a scenario: sizes 1-4 (xorshift, as in
// scheduler's BenchmarkDecide, unless fixed), every fifth names one of
// datasets datasets.
type evalGen struct {
	x        uint64
	datasets int
	size     int64 // fixed size, or 0 for 1-4
	prefix   string
	n        int
}

func newEvalGen(prefix string, datasets int, size int64) *evalGen {
	return &evalGen{x: 88172645463325252, datasets: datasets, size: size, prefix: prefix}
}

func (g *evalGen) next() evalSpec {
	i := g.n
	g.n++
	size := g.size
	if size == 0 {
		g.x ^= g.x << 13
		g.x ^= g.x >> 7
		g.x ^= g.x << 17
		size = int64(g.x%4) + 1
	}
	e := evalSpec{Size: size}
	if g.prefix != "" {
		e.ID = g.prefix + strconv.Itoa(i)
	}
	if g.datasets > 0 && i%5 == 0 {
		e.Dataset = datasetName((i / 5) % g.datasets)
	}
	return e
}

func datasetName(k int) string { return fmt.Sprintf("d%04d", k) }

// workerSpecs returns n workers of the given capacity; dataset k is held by
// workers 3k, 3k+1 and 3k+2 (mod n).
func workerSpecs(n int, capacity int64, datasets int) []workerSpec {
	ws := make([]workerSpec, n)
	for i := range ws {
		ws[i] = workerSpec{ID: fmt.Sprintf("w%05d", i), Capacity: capacity}
	}
	for k := range datasets {
		for j := range 3 {
			w := &ws[(3*k+j)%n]
			w.Datasets = append(w.Datasets, datasetName(k))
		}
	}
	return ws
}
