package events_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/line-sched/line/events"
)

// checkSameDecode fails unless Unmarshal and UnmarshalReference agree on b,
// and the fast path, when it takes b, agrees with the reference. It returns
// whether the fast path took b.
func checkSameDecode(t *testing.T, b []byte) bool {
	t.Helper()
	got, gerr := events.Unmarshal(b)
	want, werr := events.UnmarshalReference(b)
	if (gerr == nil) != (werr == nil) || (gerr != nil && gerr.Error() != werr.Error()) {
		t.Fatalf("Unmarshal err = %v, reference err = %v\ninput: %.300s", gerr, werr, b)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Unmarshal differs from the reference:\n got %#v\nwant %#v\ninput: %.300s", got, want, b)
	}
	fast, ok := events.UnmarshalFast(b)
	if ok && (werr != nil || !reflect.DeepEqual(fast, want)) {
		t.Fatalf("fast path accepted what the reference decodes as %#v (err %v):\n got %#v\ninput: %.300s", want, werr, fast, b)
	}
	return ok
}

// TestFastPathTakesWhatMarshalWrites: every example event, as Marshal
// writes it, decodes on the fast path to what the reference decoder gives.
func TestFastPathTakesWhatMarshalWrites(t *testing.T) {
	for _, e := range exampleEnvelopes(t) {
		b := mustMarshal(t, e)
		if !checkSameDecode(t, b) {
			t.Errorf("%s as Marshal writes it misses the fast path:\n%s", e.Type, b)
		}
	}
}

// TestFastPathAgreesOnUnusualForms feeds valid and invalid variants of the
// hot event types that the fast path must either decode exactly like the
// reference or leave to it.
func TestFastPathAgreesOnUnusualForms(t *testing.T) {
	placed := `{"alloc_id":"a1","eval_id":"e1","worker_id":"w1","dataset_id":"d1","size":2,"attempt":1,` +
		`"deadline":"2026-11-26T19:39:15.123Z","topic":"line.allocs.p1.w1","strategy":"spread","locality":"hit",` +
		`"candidates":3,"waited_ms":12,"basis":41}`
	submitted := `{"eval_id":"e1","dataset_id":"d1","size":2,"payload":{"a":[1,2]}}`
	rep := func(s, old, new string) string { return strings.Replace(s, old, new, 1) }
	variants := map[string]string{
		"placed":                      envJSON("alloc.placed", placed),
		"submitted":                   envJSON("eval.submitted", submitted),
		"placed with spaces":          envJSON("alloc.placed", strings.ReplaceAll(strings.ReplaceAll(placed, ":", " :\n "), ",", "\t, ")),
		"envelope with spaces":        " \n" + strings.ReplaceAll(envJSON("alloc.placed", placed), `","`, `" , "`) + "\r\n ",
		"keys in other order":         `{"data":` + placed + `,"at":"2026-11-26T19:38:45.123Z","pool":"p1","v":1,"type":"alloc.placed","id":"x"}`,
		"deadline in other zone":      envJSON("alloc.placed", rep(placed, `19:39:15.123Z`, `21:39:15.123+02:00`)),
		"deadline without fraction":   envJSON("alloc.placed", rep(placed, `19:39:15.123Z`, `19:39:15Z`)),
		"deadline with nanoseconds":   envJSON("alloc.placed", rep(placed, `19:39:15.123Z`, `19:39:15.123456789Z`)),
		"deadline lowercase z":        envJSON("alloc.placed", rep(placed, `19:39:15.123Z`, `19:39:15.123z`)),
		"deadline hour 24":            envJSON("alloc.placed", rep(placed, `19:39:15.123Z`, `24:00:00.000Z`)),
		"deadline second 60":          envJSON("alloc.placed", rep(placed, `19:39:15.123Z`, `23:59:60.000Z`)),
		"deadline 29 February 2025":   envJSON("alloc.placed", rep(placed, `2026-11-26T19`, `2025-02-29T19`)),
		"deadline 29 February 2024":   envJSON("alloc.placed", rep(placed, `2026-11-26T19`, `2024-02-29T19`)),
		"deadline 29 February 2100":   envJSON("alloc.placed", rep(placed, `2026-11-26T19`, `2100-02-29T19`)),
		"deadline 31 April":           envJSON("alloc.placed", rep(placed, `2026-11-26T19`, `2026-04-31T19`)),
		"deadline month 13":           envJSON("alloc.placed", rep(placed, `2026-11-26T19`, `2026-13-26T19`)),
		"deadline null":               envJSON("alloc.placed", rep(placed, `"2026-11-26T19:39:15.123Z"`, `null`)),
		"at in other zone":            rep(envJSON("alloc.placed", placed), `19:38:45.123Z`, `20:38:45.123+01:00`),
		"at with microseconds":        rep(envJSON("alloc.placed", placed), `19:38:45.123Z`, `19:38:45.123999Z`),
		"at year 0":                   rep(envJSON("alloc.placed", placed), `2026-11-26T19:38:45.123Z`, `0000-01-01T00:00:00.000Z`),
		"escaped worker id":           envJSON("alloc.placed", rep(placed, `"w1"`, `"w\u0031"`)),
		"escaped key":                 envJSON("alloc.placed", rep(placed, `"size"`, `"s\u0069ze"`)),
		"non-ASCII dataset":           envJSON("alloc.placed", rep(placed, `"d1"`, `"dé"`)),
		"invalid UTF-8 dataset":       envJSON("alloc.placed", rep(placed, `"d1"`, "\"d\xff\"")),
		"size -0":                     envJSON("alloc.placed", rep(placed, `"size":2`, `"size":-0`)),
		"size 2.0":                    envJSON("alloc.placed", rep(placed, `"size":2`, `"size":2.0`)),
		"size 2e0":                    envJSON("alloc.placed", rep(placed, `"size":2`, `"size":2e0`)),
		"size 02":                     envJSON("alloc.placed", rep(placed, `"size":2`, `"size":02`)),
		"size huge":                   envJSON("alloc.placed", rep(placed, `"size":2`, `"size":99999999999999999999`)),
		"size 19 digits":              envJSON("alloc.placed", rep(placed, `"size":2`, `"size":1000000000000000000`)),
		"size as string":              envJSON("alloc.placed", rep(placed, `"size":2`, `"size":"2"`)),
		"size null":                   envJSON("alloc.placed", rep(placed, `"size":2`, `"size":null`)),
		"basis negative":              envJSON("alloc.placed", rep(placed, `"basis":41`, `"basis":-41`)),
		"basis last":                  envJSON("alloc.placed", rep(placed, `"basis":41`, `"basis":41 `)),
		"dataset null":                envJSON("alloc.placed", rep(placed, `"d1"`, `null`)),
		"repeated key":                envJSON("alloc.placed", rep(placed, `"size":2`, `"size":2,"size":2`)),
		"key in other case":           envJSON("alloc.placed", rep(placed, `"size"`, `"Size"`)),
		"unknown key":                 envJSON("alloc.placed", rep(placed, `"size":2`, `"size":2,"x":1`)),
		"payload on a placement":      envJSON("alloc.placed", rep(placed, `"size":2`, `"size":2,"payload":{}`)),
		"missing required":            envJSON("alloc.placed", rep(placed, `"attempt":1,`, ``)),
		"unknown strategy":            envJSON("alloc.placed", rep(placed, `"spread"`, `"random"`)),
		"binpack miss":                envJSON("alloc.placed", rep(rep(placed, `"spread"`, `"binpack"`), `"hit"`, `"miss"`)),
		"trailing comma":              envJSON("alloc.placed", rep(placed, `}`, `,}`)),
		"data truncated":              envJSON("alloc.placed", placed[:len(placed)-1]),
		"data with trailing bracket":  envJSON("alloc.placed", placed+`]`),
		"empty data":                  envJSON("alloc.placed", `{}`),
		"payload with spaces":         envJSON("eval.submitted", rep(submitted, `{"a":[1,2]}`, ` { "a" : [ 1 , 2 ] } `)),
		"payload string":              envJSON("eval.submitted", rep(submitted, `{"a":[1,2]}`, `"x\"y"`)),
		"payload number":              envJSON("eval.submitted", rep(submitted, `{"a":[1,2]}`, `-1.5e3`)),
		"payload true":                envJSON("eval.submitted", rep(submitted, `{"a":[1,2]}`, `true`)),
		"payload null":                envJSON("eval.submitted", rep(submitted, `{"a":[1,2]}`, `null`)),
		"payload invalid":             envJSON("eval.submitted", rep(submitted, `{"a":[1,2]}`, `{"a":[1,2}}`)),
		"payload bad literal":         envJSON("eval.submitted", rep(submitted, `{"a":[1,2]}`, `tru`)),
		"payload empty array":         envJSON("eval.submitted", rep(submitted, `{"a":[1,2]}`, `[]`)),
		"submitted without payload":   envJSON("eval.submitted", `{"eval_id":"e1","size":1}`),
		"submitted zero size":         envJSON("eval.submitted", `{"eval_id":"e1","size":0}`),
		"v 1.0":                       rep(envJSON("eval.submitted", submitted), `"v":1`, `"v":1.0`),
		"v 01":                        rep(envJSON("eval.submitted", submitted), `"v":1`, `"v":01`),
		"v 2":                         rep(envJSON("eval.submitted", submitted), `"v":1`, `"v":2`),
		"id escaped":                  rep(envJSON("eval.submitted", submitted), `"id":"`, `"id":"\u0041`),
		"pool with control character": rep(envJSON("eval.submitted", submitted), `"p1"`, "\"p\x01\""),
		"type unknown":                rep(envJSON("eval.submitted", submitted), `eval.submitted`, `eval.sent`),
		"data before type":            `{"data":` + submitted + `,"id":"x","v":1,"pool":"p","type":"eval.submitted","at":"2026-11-26T19:38:45.123Z"}`,
		"trailing garbage":            envJSON("eval.submitted", submitted) + "x",
		"heartbeat":                   envJSON("worker.heartbeat", `{"worker_id":"w","deadline":"2026-11-26T19:38:45.123Z","replica_deadline":"2026-11-26T19:38:45.123Z","alloc_deadline":"2026-11-26T19:38:45.123Z","datasets":["d"],"allocs":["a"]}`),
		"heartbeat bad data":          envJSON("worker.heartbeat", `{"worker_id":"w",]`),
		"registered":                  envJSON("worker.registered", dataJSON(t, events.WorkerRegistered, func(map[string]any) {})),
	}
	fast := 0
	for name, in := range variants {
		t.Run(name, func(t *testing.T) {
			if checkSameDecode(t, []byte(in)) {
				fast++
			}
		})
	}
	if fast < 10 || fast == len(variants) {
		t.Errorf("fast path took %d of %d variants: the table does not test both paths", fast, len(variants))
	}
}
