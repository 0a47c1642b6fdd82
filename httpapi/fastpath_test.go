package httpapi

import (
	"bytes"
	"context"
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
	req, err := http.NewRequest(http.MethodPost, "/v1/pools/"+pool+"/evals", bytes.NewReader(body))
	if err != nil {
		return api.EvalRequest{}, false
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	var out api.EvalRequest
	route, params, err := j.router.FindRoute(req)
	if err != nil {
		return out, false
	}
	err = openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	})
	if err != nil {
		return out, false
	}
	req.Body = memBody{Reader: bytes.NewReader(body), b: body}
	req.ContentLength = int64(len(body))
	c := j.echo.NewContext(req, nil)
	if bind(c, &out) != nil {
		return out, false
	}
	return out, true
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
