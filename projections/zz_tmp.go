package projections

import "github.com/cockroachdb/pebble/v2"

var _ = pebble.Open
