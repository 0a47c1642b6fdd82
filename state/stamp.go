package state

import "time"

// stamp is a time held in 8 bytes instead of time.Time's 24. Log times have
// millisecond precision: such a time is held as its Unix milliseconds
// shifted left by one (the low bit clear), which covers every year the log
// can carry, the zero time included. A time with a finer part (never from
// the log) is held as its Unix nanoseconds shifted left by one with the low
// bit set. Times come back in UTC.
type stamp int64

// zeroStamp holds the zero time.
var zeroStamp = toStamp(time.Time{})

func toStamp(t time.Time) stamp {
	if t.Nanosecond()%int(time.Millisecond) == 0 {
		return stamp(t.UnixMilli() << 1)
	}
	return stamp(t.UnixNano()<<1 | 1)
}

// time returns the time s holds, in UTC.
func (s stamp) time() time.Time {
	if s&1 == 0 {
		return time.UnixMilli(int64(s) >> 1).UTC()
	}
	return time.Unix(0, int64(s)>>1).UTC()
}
