package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// envKafkaBrokers is the environment variable holding the broker list that
// services connect to.
const envKafkaBrokers = "LINE_KAFKA_BROKERS"

// Brokers parses a comma separated list of host:port broker addresses, such
// as the value of LINE_KAFKA_BROKERS. Spaces around entries are trimmed and
// empty entries are dropped; an empty or blank list returns nil.
func Brokers(env string) []string {
	var out []string
	for _, b := range strings.Split(env, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// WaitReady pings the cluster cl is configured for until a broker answers or
// ctx is done, backing off between attempts. Bound the wait with a ctx
// deadline. The error names the brokers that could not be reached and points
// at LINE_KAFKA_BROKERS.
func WaitReady(ctx context.Context, cl *kgo.Client) error {
	const (
		minBackoff = 50 * time.Millisecond
		maxBackoff = time.Second
	)
	var (
		start    = time.Now()
		backoff  = minBackoff
		attempts int
	)
	for {
		attempts++
		err := cl.Ping(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() == nil {
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
				backoff = min(2*backoff, maxBackoff)
				continue
			case <-ctx.Done():
				t.Stop()
			}
		}

		seeds, _ := cl.OptValue(kgo.SeedBrokers).([]string)
		where := "the configured brokers"
		if len(seeds) > 0 {
			where = strings.Join(seeds, ",")
		}
		if errors.Is(err, ctx.Err()) {
			// The last ping was cut off by ctx; its error adds nothing.
			return fmt.Errorf("kafka not reachable at %s after %d attempts over %s (is it running? check %s): %w",
				where, attempts, time.Since(start).Round(time.Millisecond), envKafkaBrokers, ctx.Err())
		}
		return fmt.Errorf("kafka not reachable at %s after %d attempts over %s (is it running? check %s): %w (last error: %w)",
			where, attempts, time.Since(start).Round(time.Millisecond), envKafkaBrokers, ctx.Err(), err)
	}
}
