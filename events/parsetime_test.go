package events

import (
	"testing"
	"time"
)

func TestParseLogTimeAgreesWithTimeParse(t *testing.T) {
	for _, s := range []string{
		"2026-11-26T19:00:00.000Z", "2026-11-26T19:00:00Z", "2026-11-26T19:00:00.1Z", "2026-11-26T19:00:00.12Z",
		"2026-11-26T19:00:00.123456789Z", "2026-11-26T19:00:00.000000001Z", "2026-11-26T19:00:00.1234567890Z",
		"2026-11-26T19:00:00.Z", "2026-11-26T19:00:00,1Z", "2026-11-26T19:00:00.1a2Z", "2026-11-26T19:00:00.-1Z",
		"2024-02-29T23:59:59.999Z", "2025-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-11-26T24:00:00Z",
		"2026-11-26T19:60:00Z", "2026-11-26T19:00:60Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z",
		"2026-11-26T19:00:00+00:00", "2026-11-26 19:00:00Z", "2026-11-26T19:00:00z", "2026-1-26T19:00:00Z",
	} {
		want, err := time.Parse(time.RFC3339Nano, s)
		got, ok := parseLogTime([]byte(s))
		if !ok {
			continue // the fast path may give up; the slow one decides
		}
		if err != nil {
			t.Errorf("parseLogTime(%q) = %v, time.Parse fails: %v", s, got, err)
			continue
		}
		if !got.Equal(want) || got.Location() != want.Location() || got != want {
			t.Errorf("parseLogTime(%q) = %#v, time.Parse gives %#v", s, got, want)
		}
	}
	for _, s := range []string{"2026-11-26T19:00:00.1Z", "2026-11-26T19:00:00Z", "2026-11-26T19:00:00.123456789Z"} {
		if _, ok := parseLogTime([]byte(s)); !ok {
			t.Errorf("parseLogTime(%q) gives up on a form time.RFC3339Nano writes", s)
		}
	}
}
