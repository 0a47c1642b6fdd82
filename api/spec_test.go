package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := GetSwagger()
	if err != nil {
		t.Fatalf("GetSwagger: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("embedded spec is invalid: %v", err)
	}
	return doc
}

func TestSpecValidAndComplete(t *testing.T) {
	doc := loadSpec(t)

	want := map[string][]string{ // path -> methods
		"/healthz":                 {http.MethodGet},
		"/v1/pools":                {http.MethodPost, http.MethodGet},
		"/v1/pools/{pool}":         {http.MethodDelete, http.MethodGet},
		"/v1/pools/{pool}/workers": {http.MethodPost, http.MethodGet},
		"/v1/pools/{pool}/workers/{worker}/heartbeat": {http.MethodPost},
		"/v1/pools/{pool}/evals":                      {http.MethodPost, http.MethodGet},
		"/v1/pools/{pool}/evals/batch":                {http.MethodPost},
		"/v1/pools/{pool}/allocs/{alloc}/complete":    {http.MethodPost},
		// Queries, served by the projector.
		"/v1/pools/{pool}/workers/{worker}":            {http.MethodGet},
		"/v1/pools/{pool}/evals/{eval}":                {http.MethodGet},
		"/v1/pools/{pool}/allocs/{alloc}":              {http.MethodGet},
		"/v1/pools/{pool}/datasets/{dataset}/replicas": {http.MethodGet},
		"/v1/pools/{pool}/events":                      {http.MethodGet},
		"/v1/dead-letters":                             {http.MethodGet},
		"/CreatePool":                                  {http.MethodPost},
		"/RegisterWorker":                              {http.MethodPost},
		"/DisbandPool":                                 {http.MethodPost},
		"/SendHeartbeat":                               {http.MethodPost},
		"/ScheduleEval":                                {http.MethodPost},
		"/CompleteAlloc":                               {http.MethodPost},
	}
	for path, methods := range want {
		item := doc.Paths.Find(path)
		if item == nil {
			t.Errorf("path %s missing", path)
			continue
		}
		for _, m := range methods {
			op := item.GetOperation(m)
			if op == nil {
				t.Errorf("%s %s missing", m, path)
				continue
			}
			if op.Description == "" {
				t.Errorf("%s %s has no description", m, path)
			}
		}
	}
	if got := doc.Paths.Len(); got != len(want) {
		t.Errorf("spec has %d paths, want %d", got, len(want))
	}

	// Every request body schema is closed.
	for name, ref := range doc.Components.Schemas {
		if strings.HasSuffix(name, "Request") {
			ap := ref.Value.AdditionalProperties.Has
			if ap == nil || *ap {
				t.Errorf("schema %s must have additionalProperties: false", name)
			}
		}
	}
}

// TestRequestValidation checks the conventions of the spec as the request
// validator middleware applies them (openapi3filter with the gorillamux
// router, as github.com/oapi-codegen/echo-middleware does).
func TestRequestValidation(t *testing.T) {
	doc := loadSpec(t)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("router: %v", err)
	}

	cases := []struct {
		name, method, path, body string
		ok                       bool
	}{
		{"create pool, no body", "POST", "/v1/pools", "", true},
		{"create pool, empty object", "POST", "/v1/pools", `{}`, true},
		{"create pool, full", "POST", "/v1/pools", `{"pool_id":"p-1_a","strategy":"binpack","locality_wait":"1m30.5s"}`, true},
		{"create pool, µs duration", "POST", "/v1/pools", `{"locality_wait":"250µs"}`, true},
		{"create pool, zero duration", "POST", "/v1/pools", `{"locality_wait":"0"}`, true},
		{"create pool, bad duration", "POST", "/v1/pools", `{"locality_wait":"5"}`, false},
		{"create pool, bad strategy", "POST", "/v1/pools", `{"strategy":"random"}`, false},
		{"create pool, shared delivery", "POST", "/v1/pools", `{"delivery":"shared"}`, true},
		{"create pool, per-worker delivery", "POST", "/v1/pools", `{"delivery":"per-worker"}`, true},
		{"create pool, bad delivery", "POST", "/v1/pools", `{"delivery":"broadcast"}`, false},
		{"create pool, upper-case id", "POST", "/v1/pools", `{"pool_id":"Pool"}`, false},
		{"create pool, unknown field", "POST", "/v1/pools", `{"name":"x"}`, false},
		{"disband, bad pool id in path", "DELETE", "/v1/pools/Bad.Pool", "", false},
		{"disband", "DELETE", "/v1/pools/p1", "", true},
		{"register worker", "POST", "/v1/pools/p1/workers", `{"worker_id":"w1","capacity":2147483647,"datasets":["ds:1","ds.2"]}`, true},
		{"register worker, capacity 0", "POST", "/v1/pools/p1/workers", `{"capacity":0}`, false},
		{"register worker, capacity 2^31", "POST", "/v1/pools/p1/workers", `{"capacity":2147483648}`, false},
		{"register worker, huge capacity", "POST", "/v1/pools/p1/workers", `{"capacity":99999999999999999999}`, false},
		{"register worker, no capacity", "POST", "/v1/pools/p1/workers", `{"worker_id":"w1"}`, false},
		{"register worker, duplicate datasets", "POST", "/v1/pools/p1/workers", `{"capacity":1,"datasets":["a","a"]}`, false},
		{"heartbeat", "POST", "/v1/pools/p1/workers/w1/heartbeat", `{"allocs":["a-1"],"datasets":[]}`, true},
		{"heartbeat, empty", "POST", "/v1/pools/p1/workers/w1/heartbeat", `{}`, true},
		{"heartbeat, bad worker id", "POST", "/v1/pools/p1/workers/W1/heartbeat", `{}`, false},
		{"eval, any payload", "POST", "/v1/pools/p1/evals", `{"eval_id":"e:1","dataset_id":"d","size":0,"payload":{"n":12345678901234567890}}`, true},
		{"eval, null payload", "POST", "/v1/pools/p1/evals", `{"payload":null}`, true},
		{"eval, string payload", "POST", "/v1/pools/p1/evals", `{"payload":"x"}`, true},
		{"eval, negative size", "POST", "/v1/pools/p1/evals", `{"size":-1}`, false},
		{"eval, size 2^31", "POST", "/v1/pools/p1/evals", `{"size":2147483648}`, false},
		{"eval, bad eval id", "POST", "/v1/pools/p1/evals", `{"eval_id":".e"}`, false},
		{"batch", "POST", "/v1/pools/p1/evals/batch", `{"evals":[{},{"size":3}]}`, true},
		{"batch, empty", "POST", "/v1/pools/p1/evals/batch", `{"evals":[]}`, false},
		{"batch, bad item", "POST", "/v1/pools/p1/evals/batch", `{"evals":[{"x":1}]}`, false},
		{"complete", "POST", "/v1/pools/p1/allocs/a:1/complete", `{"status":"failed","exit_code":-1,"message":"boom"}`, true},
		{"complete, no status", "POST", "/v1/pools/p1/allocs/a1/complete", `{}`, false},
		{"complete, exit code > int32", "POST", "/v1/pools/p1/allocs/a1/complete", `{"status":"failed","exit_code":2147483648}`, false},
		{"complete, message too long", "POST", "/v1/pools/p1/allocs/a1/complete", `{"status":"failed","message":"` + strings.Repeat("x", 4097) + `"}`, false},
		{"legacy create pool", "POST", "/CreatePool", `{}`, true},
		{"legacy create pool, no body", "POST", "/CreatePool", "", true},
		{"legacy create pool, field", "POST", "/CreatePool", `{"pool_id":"p"}`, false},
		{"legacy register worker", "POST", "/RegisterWorker", `{"pool_id":"p1","capacity":4}`, true},
		{"legacy register worker, no pool", "POST", "/RegisterWorker", `{"capacity":4}`, false},
		{"legacy disband", "POST", "/DisbandPool", `{"pool_id":"p1"}`, true},
		{"legacy heartbeat", "POST", "/SendHeartbeat", `{"pool_id":"p1","worker_id":"w1","allocs":["a1"]}`, true},
		{"legacy heartbeat, no worker", "POST", "/SendHeartbeat", `{"pool_id":"p1"}`, false},
		{"legacy schedule eval", "POST", "/ScheduleEval", `{"pool_id":"p1","dataset_id":"d1","size":2}`, true},
		{"legacy schedule eval, eval_id", "POST", "/ScheduleEval", `{"pool_id":"p1","eval_id":"e1"}`, false},
		{"legacy complete alloc", "POST", "/CompleteAlloc", `{"pool_id":"p1","alloc_id":"a1"}`, true},
		{"list pools", "GET", "/v1/pools?limit=1000&cursor=cDE&index=0:12&wait=1m", "", true},
		{"list pools, limit 0", "GET", "/v1/pools?limit=0", "", false},
		{"list pools, limit 1001", "GET", "/v1/pools?limit=1001", "", false},
		{"list pools, bad cursor", "GET", "/v1/pools?cursor=a%2Fb", "", false},
		{"get pool, bad index", "GET", "/v1/pools/p1?index=12", "", false},
		{"get pool, bad wait", "GET", "/v1/pools/p1?wait=5", "", false},
		{"list evals by status", "GET", "/v1/pools/p1/evals?status=dead_lettered", "", true},
		{"list evals, bad status", "GET", "/v1/pools/p1/evals?status=done", "", false},
		{"list workers, min_free", "GET", "/v1/pools/p1/workers?min_free=0", "", true},
		{"list workers, negative min_free", "GET", "/v1/pools/p1/workers?min_free=-1", "", false},
		{"get worker", "GET", "/v1/pools/p1/workers/w1", "", true},
		{"get eval", "GET", "/v1/pools/p1/evals/job-42:shard-7", "", true},
		{"get alloc", "GET", "/v1/pools/p1/allocs/a1", "", true},
		{"replicas", "GET", "/v1/pools/p1/datasets/ds.1/replicas", "", true},
		{"dead letters of a pool", "GET", "/v1/dead-letters?pool=p1", "", true},
		{"dead letters, bad pool", "GET", "/v1/dead-letters?pool=P1", "", false},
		{"events from", "GET", "/v1/pools/p1/events?from=12", "", true},
		{"events, negative from", "GET", "/v1/pools/p1/events?from=-1", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			route, params, err := router.FindRoute(req)
			if err != nil {
				t.Fatalf("FindRoute: %v", err)
			}
			err = openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
				Request:    req,
				PathParams: params,
				Route:      route,
				Options:    &openapi3filter.Options{MultiError: false},
			})
			if tc.ok && err != nil {
				t.Errorf("want valid, got %v", err)
			}
			if !tc.ok && err == nil {
				t.Errorf("want invalid, got valid")
			}
		})
	}
}
