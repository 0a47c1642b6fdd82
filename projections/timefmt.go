package projections

import "time"

// Times in rows and keys are formatted by hand: time.Format walks its
// layout on every call, which was a large part of writing the rows of a
// bulk load. appendRFC3339 gives the bytes of
// t.UTC().AppendFormat(dst, time.RFC3339Nano), appendDeadline those of
// t.UTC().AppendFormat(dst, deadlineLayout), for every time
// (TestTimeFormatLikeTimeFormat); years outside 0000-9999, which the log
// never carries, are left to the time package.

// The calendar's numbers (proleptic Gregorian): daysToUnixEpoch is the
// days from 0000-03-01 to 1970-01-01; the fast path formats the seconds
// from minFastUnixSecond to maxFastUnixSecond (years 0000-9999).
const (
	secondsPerDay     = 86400
	daysToUnixEpoch   = 719468
	daysPer400Years   = 146097
	minFastUnixSecond = -62167219200 // 0000-01-01T00:00:00Z
	maxFastUnixSecond = 253402300799 // 9999-12-31T23:59:59Z
)

// appendRFC3339 appends t in UTC as time.RFC3339Nano formats it: the
// fraction without trailing zeros, none if it is zero.
func appendRFC3339(dst []byte, t time.Time) []byte { return appendRFC3339Seen(dst, t, nil) }

// appendRFC3339Seen is appendRFC3339 with the last second it formatted
// (consecutive rows' times often fall in the same second): seen may be
// nil.
func appendRFC3339Seen(dst []byte, t time.Time, seen *lastSecond) []byte {
	sec := t.Unix()
	if sec < minFastUnixSecond || sec > maxFastUnixSecond {
		return t.UTC().AppendFormat(dst, time.RFC3339Nano)
	}
	dst = seen.append(dst, sec)
	if ns := t.Nanosecond(); ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i >= 1; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		dst = append(dst, frac[:n]...)
	}
	return append(dst, 'Z')
}

// appendDeadline appends t in UTC as deadlineLayout formats it: nine
// digits of fraction, always.
func appendDeadline(dst []byte, t time.Time) []byte {
	sec := t.Unix()
	if sec < minFastUnixSecond || sec > maxFastUnixSecond {
		return t.UTC().AppendFormat(dst, deadlineLayout)
	}
	civil := civilOf(sec)
	dst = append(dst, civil[:]...)
	var frac [11]byte
	frac[0], frac[10] = '.', 'Z'
	ns := t.Nanosecond()
	for i := 9; i >= 1; i-- {
		frac[i] = byte('0' + ns%10)
		ns /= 10
	}
	return append(dst, frac[:]...)
}

// lastSecond is the last second formatted, and its civilOf.
type lastSecond struct {
	sec   int64
	set   bool
	civil [19]byte
}

// append appends civilOf(sec), from s if it holds sec (s may be nil).
func (s *lastSecond) append(dst []byte, sec int64) []byte {
	if s == nil {
		civil := civilOf(sec)
		return append(dst, civil[:]...)
	}
	if !s.set || s.sec != sec {
		s.sec, s.set, s.civil = sec, true, civilOf(sec)
	}
	return append(dst, s.civil[:]...)
}

// civilOf is the UTC date and time of day of the Unix second sec (of
// years 0000-9999) as 2006-01-02T15:04:05.
func civilOf(sec int64) [19]byte {
	// Days since -0400-03-01 (a year then ends with February, whose leap
	// day is the last day of the year; starting 400 years early keeps
	// every count non-negative): the civil-from-days algorithm of
	// H. Hinnant.
	days := (sec - minFastUnixSecond) / secondsPerDay
	clock := int((sec - minFastUnixSecond) % secondsPerDay)
	z := days + daysToUnixEpoch + minFastUnixSecond/secondsPerDay + daysPer400Years
	era := z / daysPer400Years
	doe := z - era*daysPer400Years
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	day := int(doy - (153*mp+2)/5 + 1)
	month := int(mp + 3)
	if month > 12 {
		month -= 12
	}
	year := int(yoe+era*400) - 400
	if month <= 2 {
		year++
	}
	hour, minute, second := clock/3600, clock/60%60, clock%60
	return [19]byte{
		byte('0' + year/1000), byte('0' + year/100%10), byte('0' + year/10%10), byte('0' + year%10), '-',
		byte('0' + month/10), byte('0' + month%10), '-',
		byte('0' + day/10), byte('0' + day%10), 'T',
		byte('0' + hour/10), byte('0' + hour%10), ':',
		byte('0' + minute/10), byte('0' + minute%10), ':',
		byte('0' + second/10), byte('0' + second%10),
	}
}
