package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidRate is wrapped by every error Parse returns.
var ErrInvalidRate = errors.New("invalid rate limit")

// maxPerSecond is the highest rate a Bucket can enforce: one token per
// nanosecond. Faster rates are accepted and enforced as this one.
const maxPerSecond = 1e9

// Rate is a token refill rate: N tokens per second, minute or hour. The zero
// Rate means unlimited. Rate is a small value type, safe to copy and compare.
type Rate struct {
	n    float64       // tokens per unit; > 0 unless the Rate is unlimited
	unit time.Duration // time.Second, time.Minute or time.Hour
}

// Unlimited is the zero Rate: no limit.
var Unlimited Rate

// Parse parses a Celery rate limit string: "N/s", "N/m", "N/h", or a bare
// number N meaning N per second ("N/" too, as Celery reads it). N may be a
// decimal fraction ("0.5/s") or use an exponent ("1e3/m"); surrounding spaces
// are ignored. The empty string and zero (in any unit) mean unlimited, as in
// Celery.
//
// Parse is stricter than Celery's celery.utils.time.rate where Celery would
// accept a value that makes no sense: negative, infinite and NaN rates are
// errors here. Rates of a token per nanosecond or faster are accepted and
// enforced as one token per nanosecond, and a rate so slow that one token
// takes longer than time.Duration can hold (about 292 years) is an error.
// Every error wraps ErrInvalidRate.
func Parse(s string) (Rate, error) {
	in := s
	s = strings.TrimSpace(s)
	if s == "" {
		return Unlimited, nil
	}
	num, suffix, _ := strings.Cut(s, "/")
	var unit time.Duration
	switch suffix {
	case "", "s":
		unit = time.Second
	case "m":
		unit = time.Minute
	case "h":
		unit = time.Hour
	default:
		return Unlimited, fmt.Errorf("ratelimit: %q: %w: unknown unit %q (want s, m or h)", in, ErrInvalidRate, suffix)
	}
	n, err := parseNumber(strings.TrimSpace(num))
	if err != nil {
		return Unlimited, fmt.Errorf("ratelimit: %q: %w: %v", in, ErrInvalidRate, err)
	}
	if n == 0 {
		return Unlimited, nil
	}
	if float64(unit)/n > math.MaxInt64 {
		return Unlimited, fmt.Errorf("ratelimit: %q: %w: slower than one token per %v", in, ErrInvalidRate, time.Duration(math.MaxInt64))
	}
	return Rate{n: n, unit: unit}, nil
}

// parseNumber reads a finite, non-negative decimal number the way Python's
// float() does for Celery rate strings: digits, an optional fraction and
// exponent, and underscores between digits.
func parseNumber(s string) (float64, error) {
	if s == "" {
		return 0, errors.New("no number before the unit")
	}
	if strings.ContainsRune(s, '_') {
		for i := 0; i < len(s); i++ {
			if s[i] == '_' && (i == 0 || i == len(s)-1 || !isDigit(s[i-1]) || !isDigit(s[i+1])) {
				return 0, fmt.Errorf("%q is not a number", s)
			}
		}
		s = strings.ReplaceAll(s, "_", "")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isDigit(c) && c != '.' && c != 'e' && c != 'E' && c != '+' && c != '-' {
			return 0, fmt.Errorf("%q is not a number", s)
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("%q is not a number", s)
	case math.IsInf(n, 0):
		return 0, fmt.Errorf("%q is out of range", s)
	case n < 0:
		return 0, fmt.Errorf("%q is negative", s)
	}
	return n, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// Unlimited reports whether r imposes no limit.
func (r Rate) Unlimited() bool { return r.n == 0 }

// PerSecond returns r in tokens per second, 0 when unlimited.
func (r Rate) PerSecond() float64 {
	if r.n == 0 {
		return 0
	}
	return r.n / r.unit.Seconds()
}

// Interval returns the time between two tokens (at least 1ns), or 0 when r is
// unlimited.
func (r Rate) Interval() time.Duration {
	if r.n == 0 {
		return 0
	}
	d := math.Round(float64(r.unit) / r.n)
	if d < 1 {
		return 1
	}
	return time.Duration(d)
}

// String returns r in Celery's notation ("10/s", "0.5/m", "1000/h"), or ""
// when r is unlimited. Parse(r.String()) == r.
func (r Rate) String() string {
	if r.n == 0 {
		return ""
	}
	var u byte = 's'
	switch r.unit {
	case time.Minute:
		u = 'm'
	case time.Hour:
		u = 'h'
	}
	return strconv.FormatFloat(r.n, 'g', -1, 64) + "/" + string(u)
}
