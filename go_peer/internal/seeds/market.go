package seeds

import (
	"encoding/binary"
	"fmt"
	"regexp"
	"time"
)

// Deterministic market data of docs/seeds.md: prices are pure functions of the day number d
// (days since 1970-01-01), in integer cents.

// Mix is SplitMix64 of d taken as an unsigned 64-bit integer (arithmetic mod 2^64).
func Mix(d int64) uint64 {
	z := uint64(d) + 0x9E3779B97F4A7C15
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// floorMod is Python's %: the result has the sign of m (d may be negative before 1970).
func floorMod(d, m int64) int64 {
	r := d % m
	if r < 0 {
		r += m
	}
	return r
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// CloseCents is close(d) = 9500 + abs((d mod 80) - 40) * 25 + (mix(d) mod 401) - 200.
func CloseCents(d int64) int64 {
	return 9500 + abs64(floorMod(d, 80)-40)*25 + int64(Mix(d)%401) - 200
}

// OpenCents is open(d) = close(d - 1).
func OpenCents(d int64) int64 { return CloseCents(d - 1) }

// HighCents is max(open, close) + (mix(d) >> 32) mod 150.
func HighCents(d int64) int64 {
	return max(OpenCents(d), CloseCents(d)) + int64((Mix(d)>>32)%150)
}

// LowCents is min(open, close) - (mix(d) >> 48) mod 150.
func LowCents(d int64) int64 {
	return min(OpenCents(d), CloseCents(d)) - int64((Mix(d)>>48)%150)
}

// Day is one trading day.
type Day struct {
	Date                   string
	N                      int64 // days since 1970-01-01
	Open, Close, High, Low int64 // cents
}

var isoDate = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)

// RangeError is an invalid date range; its text is the INVALID_ARGUMENT message.
type RangeError string

func (e RangeError) Error() string { return string(e) }

func parseDate(field, v string) (time.Time, error) {
	t, err := time.Parse("2006-01-02", v)
	if !isoDate.MatchString(v) || err != nil || t.Year() < 1 {
		return time.Time{}, RangeError(fmt.Sprintf("%s: cannot parse \"%s\" as YYYY-MM-DD", field, v))
	}
	return t, nil
}

// TradingDays validates a date range and returns its Monday-Friday dates with their prices.
func TradingDays(start, end string) ([]Day, error) {
	s, err := parseDate("start_date", start)
	if err != nil {
		return nil, err
	}
	e, err := parseDate("end_date", end)
	if err != nil {
		return nil, err
	}
	if e.Before(s) {
		return nil, RangeError("end_date is before start_date")
	}
	first, last := s.Unix()/86400, e.Unix()/86400 // exact: both are midnight UTC
	if last-first > 366 {
		return nil, RangeError("range spans more than 366 days")
	}
	var days []Day
	for t, n := s, first; n <= last; t, n = t.AddDate(0, 0, 1), n+1 {
		if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
			continue
		}
		days = append(days, Day{Date: t.Format("2006-01-02"), N: n,
			Open: OpenCents(n), Close: CloseCents(n), High: HighCents(n), Low: LowCents(n)})
	}
	return days, nil
}

// MACDHistogram is dif - dea over the closing prices (in currency units), in float64.
func MACDHistogram(closes []float64) []float64 {
	out := make([]float64, len(closes))
	a12, a26, a9 := 2.0/(12+1), 2.0/(26+1), 2.0/10
	var ema12, ema26, dea float64
	for i, p := range closes {
		if i == 0 {
			ema12, ema26 = p, p
		} else {
			// float64(...) around each product keeps the compiler from fusing multiply-adds.
			ema12 = float64(a12*p) + float64((1-a12)*ema12)
			ema26 = float64(a26*p) + float64((1-a26)*ema26)
		}
		dif := ema12 - ema26
		if i == 0 {
			dea = dif
		} else {
			dea = float64(a9*dif) + float64((1-a9)*dea)
		}
		out[i] = dif - dea
	}
	return out
}

// BMP renders the bar chart of the trading days as a 24-bit BMP file (nil for no day).
func BMP(days []Day) []byte {
	if len(days) == 0 {
		return nil
	}
	const h = 100
	w := 4 * len(days)
	rowSize := (3*w + 3) / 4 * 4
	imageSize := rowSize * h
	buf := make([]byte, 54+imageSize)
	le := binary.LittleEndian
	copy(buf[0:2], "BM")
	le.PutUint32(buf[2:], uint32(54+imageSize))
	le.PutUint16(buf[6:], 0)
	le.PutUint16(buf[8:], 0)
	le.PutUint32(buf[10:], 54)
	le.PutUint32(buf[14:], 40)
	le.PutUint32(buf[18:], uint32(int32(w)))
	le.PutUint32(buf[22:], uint32(int32(h)))
	le.PutUint16(buf[26:], 1)
	le.PutUint16(buf[28:], 24)
	le.PutUint32(buf[30:], 0)
	le.PutUint32(buf[34:], uint32(imageSize))
	le.PutUint32(buf[38:], 2835)
	le.PutUint32(buf[42:], 2835)
	le.PutUint32(buf[46:], 0)
	le.PutUint32(buf[50:], 0)
	minc, maxc := days[0].Close, days[0].Close
	for _, d := range days {
		minc, maxc = min(minc, d.Close), max(maxc, d.Close)
	}
	pix := buf[54:]
	for row := range h { // bottom-up: row 0 is the bottom row
		line := pix[row*rowSize : row*rowSize+3*w]
		for i := range line {
			line[i] = 255
		}
	}
	for i, d := range days {
		bar := 1 + (d.Close-minc)*98/max(1, maxc-minc)
		b, g, r := byte(0), byte(160), byte(0)
		if d.Close < d.Open {
			b, g, r = 0, 0, 200
		}
		for row := range int(bar) {
			for x := 4 * i; x <= 4*i+2; x++ {
				o := row*rowSize + 3*x
				pix[o], pix[o+1], pix[o+2] = b, g, r
			}
		}
	}
	return buf
}
