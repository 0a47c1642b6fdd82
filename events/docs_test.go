package events_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/line-sched/line/events"
)

// docSection returns the text of docs/events.md from the heading line
// heading up to the next heading of the same or a higher level.
func docSection(t *testing.T, doc, heading string) string {
	t.Helper()
	level := strings.Count(strings.Fields(heading)[0], "#")
	i := strings.Index(doc, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("docs/events.md has no section %q", heading)
	}
	rest := doc[i+1+len(heading)+1:]
	re := regexp.MustCompile(fmt.Sprintf(`(?m)^#{1,%d} `, level))
	if loc := re.FindStringIndex(rest); loc != nil {
		rest = rest[:loc[0]]
	}
	return rest
}

var (
	docFieldRow = regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|")
	docJSON     = regexp.MustCompile("(?s)```json\n(.*?)\n```")
)

// jsonFields lists the JSON names of the fields of struct value v.
func jsonFields(v any) []string {
	var out []string
	rt := reflect.TypeOf(v)
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

func docFields(section string) []string {
	var out []string
	for _, m := range docFieldRow.FindAllStringSubmatch(section, -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return out
}

func strictInto(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// TestDocsEventsMatchCode keeps docs/events.md in step with the code: every
// event type has a section listing exactly its data fields, and every JSON
// example decodes strictly.
func TestDocsEventsMatchCode(t *testing.T) {
	raw, err := os.ReadFile("../docs/events.md")
	if err != nil {
		t.Skipf("docs/events.md not readable: %v", err)
	}
	doc := string(raw)
	data := exampleData()
	for _, typ := range events.Types {
		sec := docSection(t, doc, "### "+string(typ))
		if got, want := docFields(sec), jsonFields(data[typ]); !slices.Equal(got, want) {
			t.Errorf("%s: documented fields %v, data fields %v", typ, got, want)
		}
		ex := docJSON.FindStringSubmatch(sec)
		if ex == nil {
			t.Errorf("%s: no JSON example", typ)
			continue
		}
		e, err := events.Unmarshal([]byte(ex[1]))
		if err != nil {
			t.Errorf("%s: example does not decode: %v", typ, err)
			continue
		}
		if e.Type != typ {
			t.Errorf("%s: example is a %s", typ, e.Type)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, []byte(ex[1])); err != nil {
			t.Fatal(err)
		}
		if b, _ := events.Marshal(e); !bytes.Equal(b, compact.Bytes()) {
			t.Errorf("%s: example is not what Marshal writes:\n%s\n%s", typ, compact.Bytes(), b)
		}
	}
	for _, c := range []struct {
		heading string
		v       any
	}{
		{"## Records on a worker's alloc topic", events.AllocRecord{}},
		{"## Records on the dead-letter topic", events.DeadLetterRecord{}},
	} {
		sec := docSection(t, doc, c.heading)
		if got, want := docFields(sec), jsonFields(c.v); !slices.Equal(got, want) {
			t.Errorf("%s: documented fields %v, struct fields %v", c.heading, got, want)
		}
		ex := docJSON.FindStringSubmatch(sec)
		if ex == nil {
			t.Errorf("%s: no JSON example", c.heading)
			continue
		}
		p := reflect.New(reflect.TypeOf(c.v)).Interface()
		if err := strictInto([]byte(ex[1]), p); err != nil {
			t.Errorf("%s: example does not decode: %v", c.heading, err)
		}
	}
	// The envelope table lists the envelope fields.
	env := docSection(t, doc, "### The envelope")
	if got, want := docFields(env), []string{"at", "data", "id", "pool", "type", "v"}; !slices.Equal(got, want) {
		t.Errorf("envelope fields documented %v, want %v", got, want)
	}
	// The compact example on the topic section is one valid record value.
	top := docSection(t, doc, "## Records on the events topic")
	if ex := docJSON.FindStringSubmatch(top); ex == nil || strings.Contains(ex[1], "\n") {
		t.Error("no one-line example of a record value")
	} else if _, err := events.Unmarshal([]byte(ex[1])); err != nil {
		t.Errorf("one-line example does not decode: %v", err)
	}
}
