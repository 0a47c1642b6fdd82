package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/labstack/echo/v4"

	"github.com/line-sched/line/api"
)

// specJudge validates submitEval requests the slow way: the OpenAPI
// validator with the server's options, then bind.
type specJudge struct {
	router routers.Router
	echo   *echo.Echo
}

func newSpecJudge(t testing.TB) *specJudge {
	t.Helper()
	spec, err := api.GetSwagger()
	if err != nil {
		t.Fatal(err)
	}
	spec.Servers = nil
	r, err := gorillamux.NewRouter(spec)
	if err != nil {
		t.Fatal(err)
	}
	return &specJudge{router: r, echo: echo.New()}
}

// judge returns whether the validator accepts the request and, if so, what
// bind decodes (ok false if bind refuses it).
func (j *specJudge) judge(t testing.TB, pool, contentType string, body []byte) (api.EvalRequest, bool) {
	t.Helper()
	var out api.EvalRequest
	ok := j.judgeInto(t, "/v1/pools/"+pool+"/evals", contentType, body, &out)
	return out, ok
}

// judgeBatch is judge for the batch route.
func (j *specJudge) judgeBatch(t testing.TB, pool, contentType string, body []byte) ([]api.EvalRequest, bool) {
	t.Helper()
	var out api.EvalBatchRequest
	ok := j.judgeInto(t, "/v1/pools/"+pool+"/evals/batch", contentType, body, &out)
	return out.Evals, ok
}

// judgeInto validates a POST of body to path and binds it into out.
func (j *specJudge) judgeInto(t testing.TB, path, contentType string, body []byte, out any) bool {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	if err != nil {
		return false
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	route, params, err := j.router.FindRoute(req)
	if err != nil {
		return false
	}
	err = openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	})
	if err != nil {
		return false
	}
	req.Body = memBody{Reader: bytes.NewReader(body), b: body}
	req.ContentLength = int64(len(body))
	c := j.echo.NewContext(req, nil)
	return bind(c, out) == nil
}

// agree checks that the hand checks accept only what the spec accepts, and
// decode it as bind does; wantFast says whether they must accept it.
func (j *specJudge) agree(t testing.TB, pool, contentType string, body []byte, wantFast bool) {
	t.Helper()
	fast, fastOK := checkSubmitEval(pool, contentType, body)
	slow, slowOK := j.judge(t, pool, contentType, body)
	if fastOK && !slowOK {
		t.Errorf("pool %q, %q, body %q: the hand checks accept what the spec refuses", pool, contentType, body)
	}
	if fastOK && !reflect.DeepEqual(fast, slow) {
		t.Errorf("pool %q, body %q: hand checks decode %+v, bind %+v", pool, body, show(fast), show(slow))
	}
	if wantFast && !fastOK {
		t.Errorf("pool %q, %q, body %q: valid, but the hand checks do not prove it", pool, contentType, body)
	}
	if wantFast && !slowOK {
		t.Errorf("pool %q, %q, body %q: the test expects a valid request, the spec refuses it", pool, contentType, body)
	}
}

// agreeBatch is agree for the batch route.
func (j *specJudge) agreeBatch(t testing.TB, pool, contentType string, body []byte, wantFast bool) {
	t.Helper()
	fast, fastOK := checkSubmitEvalBatch(pool, contentType, body)
	slow, slowOK := j.judgeBatch(t, pool, contentType, body)
	if fastOK && !slowOK {
		t.Errorf("pool %q, %q, body %.200q: the hand checks accept a batch the spec refuses", pool, contentType, body)
	}
	if fastOK && !reflect.DeepEqual(fast, slow) {
		t.Errorf("pool %q, body %.200q: hand checks decode %d evals, bind %d, or different ones", pool, body, len(fast), len(slow))
	}
	if wantFast && !fastOK {
		t.Errorf("pool %q, %q, body %.200q: valid, but the hand checks do not prove it", pool, contentType, body)
	}
	if wantFast && !slowOK {
		t.Errorf("pool %q, %q, body %.200q: the test expects a valid batch, the spec refuses it", pool, contentType, body)
	}
}

func show(r api.EvalRequest) string {
	var b strings.Builder
	if r.EvalId != nil {
		b.WriteString("eval_id=" + *r.EvalId + " ")
	}
	if r.DatasetId != nil {
		b.WriteString("dataset_id=" + *r.DatasetId + " ")
	}
	if r.Size != nil {
		b.WriteString("size set ")
	}
	b.WriteString("payload=" + string(r.Payload))
	return b.String()
}

const jsonCT = "application/json"

func TestSubmitEvalCheckAgreesWithSpec(t *testing.T) {
	j := newSpecJudge(t)
	long := strings.Repeat("a", 128)
	good := []string{
		`{}`, ` { } `, `{"size":1}`, `{"size":0}`, `{"size":2147483647}`,
		`{"eval_id":"job-42:shard-7","dataset_id":"ds.2024-06-01","size":3}`,
		`{"eval_id":"` + long + `"}`, `{"dataset_id":"A"}`,
		`{"payload":null}`, `{"payload":{"k":[1,2.50,"}"],"s":" a  b "}}`, `{"payload":"x\"y"}`,
		`{"payload":[1,{"a":[]}],"size":7}`, `{"payload":12.5e3}`, `{"payload":true}`,
		"{\n\t\"size\" : 5 ,\r\n \"eval_id\":\"e1\"\n}",
	}
	for _, b := range good {
		j.agree(t, "act", jsonCT, []byte(b), true)
	}
	for _, ct := range []string{"application/json; charset=utf-8", "application/json; charset=UTF-8"} {
		j.agree(t, "act", ct, []byte(`{"size":1}`), true)
	}
	for _, p := range []string{"a", "0", "batch-eu1", "a_b", strings.Repeat("p", 64)} {
		j.agree(t, p, jsonCT, []byte(`{"size":1}`), true)
	}

	// Refused by the spec (or by bind): the hand checks must not accept
	// any of them.
	bad := []string{
		``, ` `, `null`, `[]`, `"x"`, `1`, `{`, `{"size":1`, `{"size":1} {"size":2}`, `{"size":1}x`,
		`{"eval_id":"x",}`, `{"sise":2}`, `{"EVAL_ID":"x"}`, `{"Size":1}`, `{"priority":1}`,
		`{"eval_id":""}`, `{"eval_id":"` + long + `a"}`, `{"eval_id":"a/b"}`, `{"eval_id":"_no"}`,
		`{"eval_id":"-no"}`, `{"eval_id":"a b"}`, `{"eval_id":"é"}`, `{"eval_id":null}`, `{"eval_id":1}`,
		`{"eval_id":"a\u002fb"}`, `{"dataset_id":"ds 1"}`, `{"dataset_id":null}`, `{"dataset_id":["a"]}`,
		`{"size":-1}`, `{"size":2147483648}`, `{"size":1.5}`, `{"size":"1"}`, `{"size":null}`,
		`{"size":1e99}`, `{"size":true}`, `{"size":-0.5}`, `{"size":99999999999999999999}`,
	}
	for _, b := range bad {
		if _, ok := checkSubmitEval("act", jsonCT, []byte(b)); ok {
			t.Errorf("body %q: the hand checks accept it", b)
		}
		j.agree(t, "act", jsonCT, []byte(b), false)
	}
	for _, p := range []string{"", "ACT", "_a", "-a", "a.b", "a:b", "é", strings.Repeat("p", 65)} {
		if _, ok := checkSubmitEval(p, jsonCT, []byte(`{}`)); ok {
			t.Errorf("pool %q: the hand checks accept it", p)
		}
		if p != "" {
			j.agree(t, p, jsonCT, []byte(`{}`), false)
		}
	}
	for _, ct := range []string{"", "text/plain", "application/xml", "application/jsonx", "multipart/form-data"} {
		if _, ok := checkSubmitEval("act", ct, []byte(`{}`)); ok {
			t.Errorf("content type %q: the hand checks accept it", ct)
		}
		j.agree(t, "act", ct, []byte(`{}`), false)
	}
	// Valid for the spec, left to the validator: never wrong, only slow.
	for _, b := range []string{`{"size":1.0}`, `{"size":1,"size":2}`, `{"eval_id":"\u0041"}`} {
		j.agree(t, "act", jsonCT, []byte(b), false)
	}
}

func TestSubmitEvalBatchCheckAgreesWithSpec(t *testing.T) {
	j := newSpecJudge(t)
	many := func(n int, item string) string {
		return `{"evals":[` + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + `]}`
	}
	good := []string{
		`{"evals":[{}]}`, ` { "evals" : [ { } ] } `, `{"evals":[{"size":1},{"size":2}]}`,
		`{"evals":[{"eval_id":"job-42:shard-7","dataset_id":"ds.2024-06-01","size":3},{"eval_id":"b","payload":{"x":["]}"]}}]}`,
		"{\n\t\"evals\" :\r\n[ {\"size\" : 5} ,\n{\"eval_id\":\"e1\"}\n]\n}",
		`{"evals":[{"payload":null},{"payload":[1,{"a":[]}],"size":7}]}`,
		many(10_000, `{"size":1}`),
	}
	for _, b := range good {
		j.agreeBatch(t, "act", jsonCT, []byte(b), true)
	}
	// Refused by the spec (or by bind): the hand checks must not accept
	// any of them.
	bad := []string{
		``, `null`, `[]`, `{}`, `{"evals":[]}`, `{"evals":null}`, `{"evals":{}}`, `{"evals":[1]}`, `{"evals":["x"]}`,
		`{"evals":[null]}`, `{"evals":[[]]}`, `{"evals":[{}],"x":1}`, `{"x":1,"evals":[{}]}`, `{"evalsx":[{}]}`,
		`{"Evals":[{}]}`, `{"evals":[{}],"evals":[{}]}`, `{"evals":[{"size":-1}]}`, `{"evals":[{},{"sise":1}]}`,
		`{"evals":[{"eval_id":"a/b"}]}`, `{"evals":[{"size":1,"size":1}]}`, `{"evals":[{}]} x`, `{"evals":[{}]`,
		many(10_001, `{"size":1}`),
	}
	for _, b := range bad {
		if _, ok := checkSubmitEvalBatch("act", jsonCT, []byte(b)); ok {
			t.Errorf("body %.200q: the hand checks accept it", b)
		}
		j.agreeBatch(t, "act", jsonCT, []byte(b), false)
	}
	for _, p := range []string{"", "ACT", "a.b"} {
		if _, ok := checkSubmitEvalBatch(p, jsonCT, []byte(`{"evals":[{}]}`)); ok {
			t.Errorf("pool %q: the hand checks accept it", p)
		}
	}
	if _, ok := checkSubmitEvalBatch("act", "text/plain", []byte(`{"evals":[{}]}`)); ok {
		t.Error("content type text/plain: the hand checks accept it")
	}
	// Valid for the spec, left to the validator: never wrong, only slow.
	for _, b := range []string{`{"evals":[{"size":1.0}]}`, `{"\u0065vals":[{}]}`} {
		j.agreeBatch(t, "act", jsonCT, []byte(b), false)
	}
}

// FuzzSubmitEvalBatchCheck: whatever the hand checks accept, the spec
// accepts and bind decodes the same way.
func FuzzSubmitEvalBatchCheck(f *testing.F) {
	for _, s := range []string{`{"evals":[{}]}`, `{"evals":[{"size":1},{"eval_id":"a.b","dataset_id":"d","size":3,"payload":{"x":[1,"]"]}}]}`,
		`{"evals":[]}`, `{"evals":[{"size":-1}]}`, `{"evals":[{}],"x":1}`, `{"evals":[{"x":1}]}`} {
		f.Add("act", s)
	}
	j := newSpecJudge(f)
	f.Fuzz(func(t *testing.T, pool, body string) {
		if strings.ContainsAny(pool, "/?#%") {
			return // not one path segment
		}
		j.agreeBatch(t, pool, jsonCT, []byte(body), false)
	})
}

// FuzzSubmitEvalCheck: whatever the hand checks accept, the spec accepts and
// bind decodes the same way.
func FuzzSubmitEvalCheck(f *testing.F) {
	for _, s := range []string{`{}`, `{"size":1}`, `{"eval_id":"a.b","dataset_id":"d","size":3,"payload":{"x":[1,"]"]}}`,
		`{"size":-1}`, `{"eval_id":"a/b"}`, `{"payload":"\"}"}`, `{"size":1.5}`, `{"x":1}`} {
		f.Add("act", s)
	}
	j := newSpecJudge(f)
	f.Fuzz(func(t *testing.T, pool, body string) {
		if strings.ContainsAny(pool, "/?#%") {
			return // not one path segment
		}
		j.agree(t, pool, jsonCT, []byte(body), false)
	})
}

// TestWriteEvalAcceptedMatchesJSON: the hand-written answer is byte for byte
// what c.JSON writes.
func TestWriteEvalAcceptedMatchesJSON(t *testing.T) {
	e := echo.New()
	for _, a := range []api.EvalAccepted{
		{PoolId: "act", EvalId: "01JABCDEFGHJKMNPQRSTVWXYZ0", Position: "3:18211"},
		{PoolId: "p_1-x", EvalId: "job-42:shard.7", Position: "0:0", Duplicate: true},
		{PoolId: "p", EvalId: "a<b>&\"c\\", Position: "1:2"},
	} {
		want, got := httptest.NewRecorder(), httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/", nil)
		if err := e.NewContext(req, want).JSON(http.StatusAccepted, a); err != nil {
			t.Fatal(err)
		}
		if err := writeEvalAccepted(e.NewContext(req, got), http.StatusAccepted, a); err != nil {
			t.Fatal(err)
		}
		if got.Body.String() != want.Body.String() || got.Code != want.Code ||
			got.Header().Get("Content-Type") != want.Header().Get("Content-Type") {
			t.Errorf("wrote %d %q %q, c.JSON writes %d %q %q", got.Code, got.Header().Get("Content-Type"), got.Body,
				want.Code, want.Header().Get("Content-Type"), want.Body)
		}
	}
}

// BenchmarkSubmitEvalValidation compares the hand checks with the
// validator and bind they replace on the hot route, for the body line bench
// ingest sends and one with every member (the spec's side includes building
// its request: a few hundred nanoseconds).
func BenchmarkSubmitEvalValidation(b *testing.B) {
	j := newSpecJudge(b)
	bodies := map[string][]byte{
		"size":   []byte(`{"size":1}`),
		"member": []byte(`{"eval_id":"job-42:shard-7","dataset_id":"ds.2024-06-01","size":3,"payload":{"k":[1,2]}}`),
	}
	for name, body := range bodies {
		b.Run("hand/"+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := checkSubmitEval("act", jsonCT, body); !ok {
					b.Fatal("refused")
				}
			}
		})
		b.Run("spec/"+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := j.judge(b, "act", jsonCT, body); !ok {
					b.Fatal("refused")
				}
			}
		})
	}
}

// BenchmarkSubmitEvalBatchValidation compares the hand checks with the
// validator and bind for the batch line bench c1m sends (10,000 evals, a
// fifth naming a dataset).
func BenchmarkSubmitEvalBatchValidation(b *testing.B) {
	j := newSpecJudge(b)
	var sb strings.Builder
	sb.WriteString(`{"evals":[`)
	for i := range 10_000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		if i%5 == 0 {
			fmt.Fprintf(&sb, `{"eval_id":"e-%d","dataset_id":"ds-%d","size":%d}`, i, i%1000, 1+i%4)
		} else {
			fmt.Fprintf(&sb, `{"eval_id":"e-%d","size":%d}`, i, 1+i%4)
		}
	}
	sb.WriteString(`]}`)
	body := []byte(sb.String())
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := checkSubmitEvalBatch("act", jsonCT, body); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("spec", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := j.judgeBatch(b, "act", jsonCT, body); !ok {
				b.Fatal("refused")
			}
		}
	})
}
