package ratelimit

import (
	"bufio"
	"errors"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/celerity-go/celerity/internal/brokertest"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in        string
		perSecond float64
		interval  time.Duration
		str       string
	}{
		{"10/s", 10, 100 * time.Millisecond, "10/s"},
		{"100/m", 100.0 / 60, 600 * time.Millisecond, "100/m"},
		{"1000/h", 1000.0 / 3600, 3600 * time.Millisecond, "1000/h"},
		{"10", 10, 100 * time.Millisecond, "10/s"},
		{"10/", 10, 100 * time.Millisecond, "10/s"},
		{"0.5/s", 0.5, 2 * time.Second, "0.5/s"},
		{"1e3/m", 1000.0 / 60, 60 * time.Millisecond, "1000/m"},
		{" 10 /s ", 10, 100 * time.Millisecond, "10/s"},
		{"+2/h", 2.0 / 3600, 30 * time.Minute, "2/h"},
		{"1_000/s", 1000, time.Millisecond, "1000/s"},
		{"3/s", 3, 333333333 * time.Nanosecond, "3/s"},
		{"5e9/s", 5e9, time.Nanosecond, "5e+09/s"}, // faster than 1/ns: enforced as 1/ns
		{"", 0, 0, ""},
		{"0", 0, 0, ""},
		{"0/m", 0, 0, ""},
		{"0.0/h", 0, 0, ""},
		{"1e-400/s", 0, 0, ""}, // underflows to 0, as Python's float() does
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			r, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got := r.PerSecond(); math.Abs(got-tt.perSecond) > 1e-9*tt.perSecond {
				t.Errorf("PerSecond = %v, want %v", got, tt.perSecond)
			}
			if got := r.Interval(); got != tt.interval {
				t.Errorf("Interval = %v, want %v", got, tt.interval)
			}
			if got := r.String(); got != tt.str {
				t.Errorf("String = %q, want %q", got, tt.str)
			}
			if r.Unlimited() != (tt.perSecond == 0) {
				t.Errorf("Unlimited = %v", r.Unlimited())
			}
			back, err := Parse(r.String())
			if err != nil || back != r {
				t.Errorf("Parse(String()) = %v, %v; want %v", back, err, r)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"10/S", `unknown unit "S"`},
		{"10/d", `unknown unit "d"`},
		{"10/ s", `unknown unit " s"`},
		{"10/s/x", `unknown unit "s/x"`},
		{"10//s", `unknown unit "/s"`},
		{"/s", "no number"},
		{"abc", "not a number"},
		{"0x10", "not a number"},
		{"1__0/s", "not a number"},
		{"_1/s", "not a number"},
		{"1e", "not a number"},
		{"-5/s", "negative"},
		{"inf", "not a number"},
		{"NaN/s", "not a number"},
		{"1e400/s", "out of range"},
		{"1e-300/h", "slower than one token per"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			r, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want an error", tt.in, r)
			}
			if !errors.Is(err, ErrInvalidRate) {
				t.Errorf("error %v does not wrap ErrInvalidRate", err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), strconv.Quote(tt.in)) {
				t.Errorf("error %q should quote the input and say %q", err, tt.want)
			}
		})
	}
}

// TestParseMatchesCelery feeds the same strings to celery.utils.time.rate
// (which Celery's rate_limit command and consumer use) and to Parse: where
// Celery yields a usable rate both must agree on tokens per second, and
// where Celery raises, Parse must fail too.
func TestParseMatchesCelery(t *testing.T) {
	brokertest.Celery(t)
	inputs := []string{"10/s", "100/m", "1000/h", "10", "0", "", "0.5/s", "10/",
		"1e3/m", " 10 /s", "1_000/s", "2.5/h", "10/S", "10/d", "abc", "/s", "10/s/x", "10//s", "10/ s"}
	script := `import sys
from celery.utils.time import rate
for line in sys.stdin.read().split("\n")[:-1]:
    try:
        print(repr(float(rate(line))))
    except Exception:
        print("error")
`
	cmd := exec.Command(brokertest.Python, "-c", script)
	cmd.Stdin = strings.NewReader(strings.Join(inputs, "\n") + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for _, in := range inputs {
		if !sc.Scan() {
			t.Fatalf("python printed too few lines: %q", out)
		}
		celery := sc.Text()
		r, err := Parse(in)
		if celery == "error" {
			if err == nil {
				t.Errorf("Celery rejects %q, Parse accepts it as %v", in, r)
			}
			continue
		}
		want, perr := strconv.ParseFloat(celery, 64)
		if perr != nil {
			t.Fatalf("python printed %q", celery)
		}
		if err != nil {
			t.Errorf("Celery reads %q as %v/s, Parse fails: %v", in, want, err)
			continue
		}
		if got := r.PerSecond(); math.Abs(got-want) > 1e-12*want {
			t.Errorf("%q: Parse = %v/s, Celery = %v/s", in, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidRate) {
				t.Fatalf("Parse(%q): error %v does not wrap ErrInvalidRate", s, err)
			}
			return
		}
		if r.Unlimited() {
			if r.Interval() != 0 || r.PerSecond() != 0 {
				t.Fatalf("unlimited %q has interval %v", s, r.Interval())
			}
			return
		}
		if r.Interval() < 1 || math.IsNaN(r.PerSecond()) || r.PerSecond() <= 0 {
			t.Fatalf("Parse(%q) = interval %v, %v/s", s, r.Interval(), r.PerSecond())
		}
		if back, err := Parse(r.String()); err != nil || back != r {
			t.Fatalf("Parse(%q).String() = %q does not parse back: %v, %v", s, r.String(), back, err)
		}
	})
}
