package beat

import (
	"errors"
	"testing"
	"time"
)

func TestNewIntervalRejectsNonPositive(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{0, -time.Second} {
		if s, err := NewInterval(d); !errors.Is(err, ErrInterval) {
			t.Errorf("NewInterval(%v) = %v, %v; want ErrInterval", d, s, err)
		}
	}
}

func TestIntervalIsDue(t *testing.T) {
	t.Parallel()
	last := time.Date(2024, 5, 10, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		every    time.Duration
		now      time.Duration // after last
		wantDue  bool
		wantNext time.Duration
	}{
		{"not yet", 10 * time.Second, 3 * time.Second, false, 7 * time.Second},
		{"exactly due (now - last >= every)", 10 * time.Second, 10 * time.Second, true, 10 * time.Second},
		{"late", 10 * time.Second, 25 * time.Second, true, 10 * time.Second},
		{"clock went back", 10 * time.Second, -5 * time.Second, false, 15 * time.Second},
		{"sub-second", 250 * time.Millisecond, 249 * time.Millisecond, false, time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := NewInterval(tc.every)
			if err != nil {
				t.Fatal(err)
			}
			due, next := s.IsDue(last, last.Add(tc.now))
			if due != tc.wantDue || next != tc.wantNext {
				t.Errorf("IsDue = %v, %v; want %v, %v", due, next, tc.wantDue, tc.wantNext)
			}
		})
	}
}

func TestIntervalAcrossDSTIsElapsedTime(t *testing.T) {
	t.Parallel()
	berlin := mustLoc(t, "Europe/Berlin")
	s, _ := NewInterval(time.Hour)
	last := time.Date(2024, 3, 31, 1, 30, 0, 0, berlin) // CET; 02:00 -> 03:00 follows
	if got, want := s.Next(last), time.Date(2024, 3, 31, 3, 30, 0, 0, berlin); !got.Equal(want) {
		t.Errorf("Next = %s, want %s (one hour of elapsed time)", got, want)
	}
}

func TestIntervalRelative(t *testing.T) {
	t.Parallel()
	berlin := mustLoc(t, "Europe/Berlin")
	kolkata := mustLoc(t, "Asia/Kolkata") // +05:30
	tests := []struct {
		name  string
		every time.Duration
		loc   *time.Location
		after string // wall clock in loc
		want  string // wall clock in loc
	}{
		{"hour rounds to the hour", time.Hour, time.UTC, "2024-05-10 10:20:00", "2024-05-10 11:00:00"},
		{"90 minutes rounds to the hour", 90 * time.Minute, time.UTC, "2024-05-10 10:20:00", "2024-05-10 11:00:00"},
		{"hour in a half-hour zone", time.Hour, kolkata, "2024-05-10 10:20:00", "2024-05-10 11:00:00"},
		{"minutes", 5 * time.Minute, time.UTC, "2024-05-10 10:20:31.5", "2024-05-10 10:25:00"},
		{"seconds drop the fraction", 2 * time.Second, time.UTC, "2024-05-10 10:20:31.5", "2024-05-10 10:20:33"},
		{"day rounds to local midnight", 24 * time.Hour, berlin, "2024-05-10 10:20:00", "2024-05-11 00:00:00"},
		{"day over the 25-hour day", 24 * time.Hour, berlin, "2024-10-27 00:30:00", "2024-10-28 00:00:00"},
		{"day over the 23-hour day", 24 * time.Hour, berlin, "2024-03-31 00:30:00", "2024-04-01 00:00:00"},
		{"sub-second is not rounded", 300 * time.Millisecond, time.UTC, "2024-05-10 10:20:31.5", "2024-05-10 10:20:31.8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := NewInterval(tc.every)
			if err != nil {
				t.Fatal(err)
			}
			r := s.Relative(tc.loc)
			if !r.IsRelative() || s.IsRelative() || r.Every() != tc.every {
				t.Fatal("Relative must return a relative copy")
			}
			after := at(t, tc.loc, tc.after)
			got := r.Next(after)
			if want := at(t, tc.loc, tc.want); !got.Equal(want) {
				t.Errorf("Next(%s) = %s, want %s", after, got, want)
			}
			if !got.After(after) {
				t.Errorf("Next(%s) = %s is not after it", after, got)
			}
		})
	}
}

func TestIntervalString(t *testing.T) {
	t.Parallel()
	s, _ := NewInterval(10 * time.Second)
	if got := s.String(); got != "every 10s" {
		t.Errorf("String() = %q", got)
	}
	if got := s.Relative(nil).String(); got != "every 10s (relative)" {
		t.Errorf("String() = %q", got)
	}
}
