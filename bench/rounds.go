package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/events"
)

// roundTimes is what the log tells of one scheduler transaction (a round)
// on a partition: the decision time written in its events, when its first
// record was produced (the client's record timestamp), when its commit
// marker was written (the broker's), and how many placements it carried.
type roundTimes struct {
	decided, produced, committed time.Time
	placed                       int
}

// roundStats are the medians and 90th percentiles of the phases of the
// scheduler's rounds on one partition.
type roundStats struct {
	Rounds                    int
	PlacedP50                 float64
	DecideToProduce           [2]float64 // ms: p50, p90
	ProduceToCommit           [2]float64
	CommitToNextDecide        [2]float64
	FirstSubmitToFirstDecide  float64 // ms
	LastCommit, FirstDecision time.Time
}

// schedulerRounds reads the partition of topic (read_committed, with the
// transaction markers) of pool and splits the scheduler's transactions (those that
// carry alloc.placed) into rounds.
func schedulerRounds(ctx context.Context, brokers []string, topic, pool string) (roundStats, error) {
	var st roundStats
	ends, err := committedEnd(ctx, brokers, topic)
	if err != nil {
		return st, err
	}
	part := events.PartitionFor(pool, int32(len(ends)))
	end := ends[part]
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {part: kgo.NewOffset().At(0)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return st, err
	}
	defer cl.Close()
	open := map[int64]*roundTimes{} // by producer id: the transaction in progress
	var rounds []roundTimes
	var firstSubmit time.Time
	var next int64
	for next < end {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return st, err
		}
		for _, fe := range fs.Errors() {
			return st, fe.Err
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= end {
				return
			}
			next = r.Offset + 1
			if r.Attrs.IsControl() {
				if rt := open[r.ProducerID]; rt != nil {
					rt.committed = r.Timestamp
					rounds = append(rounds, *rt)
					delete(open, r.ProducerID)
				}
				return
			}
			typ := ""
			for _, h := range r.Headers {
				if h.Key == "type" {
					typ = string(h.Value)
				}
			}
			if typ == string(events.EvalSubmitted) && firstSubmit.IsZero() {
				firstSubmit = r.Timestamp
			}
			if typ != string(events.AllocPlaced) {
				return
			}
			rt := open[r.ProducerID]
			if rt == nil {
				at, _ := time.Parse("2006-01-02T15:04:05.000Z07:00", string(field(r.Value, []byte(`"at":"`))))
				rt = &roundTimes{decided: at, produced: r.Timestamp}
				open[r.ProducerID] = rt
			}
			rt.placed++
			if r.Timestamp.Before(rt.produced) {
				rt.produced = r.Timestamp
			}
		})
	}
	st.Rounds = len(rounds)
	if len(rounds) == 0 {
		return st, nil
	}
	var placed, d2p, p2c, c2d []float64
	for i, rt := range rounds {
		placed = append(placed, float64(rt.placed))
		d2p = append(d2p, ms(rt.produced.Sub(rt.decided)))
		p2c = append(p2c, ms(rt.committed.Sub(rt.produced)))
		if i+1 < len(rounds) {
			c2d = append(c2d, ms(rounds[i+1].decided.Sub(rt.committed)))
		}
	}
	for _, s := range [][]float64{placed, d2p, p2c, c2d} {
		slices.Sort(s)
	}
	st.PlacedP50 = Percentile(placed, 50)
	st.DecideToProduce = [2]float64{Percentile(d2p, 50), Percentile(d2p, 90)}
	st.ProduceToCommit = [2]float64{Percentile(p2c, 50), Percentile(p2c, 90)}
	st.CommitToNextDecide = [2]float64{Percentile(c2d, 50), Percentile(c2d, 90)}
	st.FirstDecision, st.LastCommit = rounds[0].decided, rounds[len(rounds)-1].committed
	if !firstSubmit.IsZero() {
		st.FirstSubmitToFirstDecide = ms(rounds[0].decided.Sub(firstSubmit))
	}
	return st, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (s roundStats) String() string {
	return fmt.Sprintf("%d rounds, %.0f placements/round (p50); decide+encode %.0f/%.0f ms, produce+commit %.0f/%.0f ms, commit->next decision %.0f/%.0f ms (p50/p90)",
		s.Rounds, s.PlacedP50, s.DecideToProduce[0], s.DecideToProduce[1], s.ProduceToCommit[0], s.ProduceToCommit[1], s.CommitToNextDecide[0], s.CommitToNextDecide[1])
}
